use super::*;

fn err(text: &str) -> (usize, String, String) {
    match Config::parse(text, "t.toml") {
        Err(ConfigError::Invalid {
            line, key, message, ..
        }) => (line, key, message),
        other => panic!("expected an error with a line for {text:?}, got {other:?}"),
    }
}

#[test]
fn every_key_parses() {
    let text = r#"
[policy]
rules = ["local.toml", "/etc/trackless/clearurls.json"]
opaque_links = "mark"
links = false
authserv_ids = ["mx.example.net"]
own_hosts = ["relay.example.net"]
tracking_params = ["ref_id"]
tracking_param_prefixes = ["zz_"]
pixel_heuristics = false
pixel_max_px = 2

[allow]
senders = ["bank@bank.example"]
domains = ["gov.example"]
require_dkim = false

[limits]
max_size = "32M"
max_depth = 16
html_memory = 16777216
max_time = "5s"

[log]
enabled = true
path = "/var/lib/trackless/log.sqlite"
subject = true
recipients = true
headers = true
retention = "180d"
queue = 5000

[milter]
listen = "unix:/run/trackless/milter.sock"
socket_mode = "0660"
workers = 4
max_connections = 50
queue_wait = "5s"
on_overload = "tempfail"
metrics = "127.0.0.1:9567"

[smtp]
listen = "inet:127.0.0.1:10025"
forward = "smtp://127.0.0.1:10026"
hostname = "filter.example.net"
max_size = "50M"
max_recipients = 500
timeout = "5m"
downstream_timeout = "1m"
socket_mode = "0600"
workers = 2
max_connections = 20
queue_wait = "10s"
on_overload = "accept"
metrics = "127.0.0.1:9568"

[lmtp]
listen = "unix:/run/trackless/lmtp.sock"
forward = "lmtp:unix:/run/dovecot/lmtp"

[batch]
jobs = 3
backup = "/var/backups/trackless"

[pipe]
sendmail = "/usr/sbin/sendmail"
"#;
    let c = Config::parse(text, "t.toml").expect("parses");
    assert_eq!(c.policy.rules.len(), 2);
    assert_eq!(c.policy.opaque_links, Some(OpaqueLinks::Mark));
    assert_eq!(c.policy.links, Some(false));
    assert_eq!(c.policy.tracking_params, ["ref_id"]);
    assert_eq!(c.policy.pixel_max_px, Some(2.0));
    assert_eq!(c.allow.require_dkim, Some(false));
    assert_eq!(c.limits.max_size, Some(Size(32 << 20)));
    assert_eq!(c.limits.html_memory, Some(Size(16 << 20)));
    assert_eq!(c.limits.max_time.map(|d| d.0.as_secs()), Some(5));
    assert_eq!(c.log.retention.map(|d| d.0.as_secs()), Some(180 * 86_400));
    assert_eq!(c.log.queue.map(|q| q.get()), Some(5000));
    assert_eq!(c.milter.socket_mode, Some(Mode(0o660)));
    assert_eq!(c.milter.on_overload, Some(Overload::Tempfail));
    assert_eq!(
        c.milter
            .metrics
            .as_ref()
            .map(|m| m.0.to_string())
            .as_deref(),
        Some("127.0.0.1:9567")
    );
    assert_eq!(
        c.smtp.forward.as_ref().map(|t| t.0.to_string()).as_deref(),
        Some("smtp://127.0.0.1:10026")
    );
    assert_eq!(c.smtp.max_recipients.map(|n| n.get()), Some(500));
    assert_eq!(c.smtp.daemon().workers.map(|n| n.get()), Some(2));
    assert!(c.lmtp.forward.as_ref().is_some_and(|t| t.0.lmtp));
    assert_eq!(c.batch.jobs.map(|n| n.get()), Some(3));
    assert_eq!(c.pipe.sendmail.as_deref(), Some("/usr/sbin/sendmail"));
}

#[test]
fn empty_file_is_all_defaults() {
    let c = Config::parse("# nothing\n", "t.toml").expect("parses");
    assert!(c.policy.rules.is_empty() && c.milter.listen.is_none() && c.log.path.is_none());
}

#[test]
fn unknown_keys_name_line_and_key() {
    let (line, key, msg) = err("[log]\npath = \"/x\"\n\nretension = \"10d\"\n");
    assert_eq!((line, key.as_str()), (4, "log.retension"));
    assert!(msg.contains("unknown field"), "{msg}");
    let (line, key, _) = err("# top\n[limit]\nmax_size = 1\n");
    assert_eq!((line, key.as_str()), (2, "[limit]"));
    let (line, key, _) = err("[milter]\nlisten = \"unix:/x\"\n[milter.extra]\n");
    assert_eq!(line, 3, "{key}");
}

#[test]
fn bad_values_name_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("[policy]\nlinks = \"yes\"\n", 2, "policy.links", "bool"),
        (
            "[policy]\nopaque_links = \"hide\"\n",
            2,
            "policy.opaque_links",
            "keep",
        ),
        (
            "[limits]\n\nmax_size = \"64X\"\n",
            3,
            "limits.max_size",
            "not a size",
        ),
        (
            "[limits]\nmax_time = \"10\"\n",
            2,
            "limits.max_time",
            "not a duration",
        ),
        (
            "[limits]\nmax_depth = 0\n",
            2,
            "limits.max_depth",
            "nonzero",
        ),
        (
            "[milter]\nlisten = \"tcp:1.2.3.4\"\n",
            2,
            "milter.listen",
            "",
        ),
        (
            "[milter]\nsocket_mode = \"0999\"\n",
            2,
            "milter.socket_mode",
            "octal",
        ),
        (
            "[milter]\nsocket_mode = 660\n",
            2,
            "milter.socket_mode",
            "octal string",
        ),
        ("[milter]\nworkers = -1\n", 2, "milter.workers", ""),
        (
            "[milter]\non_overload = \"drop\"\n",
            2,
            "milter.on_overload",
            "accept",
        ),
        (
            "[milter]\nmetrics = \"localhost\"\n",
            2,
            "milter.metrics",
            "",
        ),
        (
            "[smtp]\nforward = \"10026\"\n",
            2,
            "smtp.forward",
            "expected smtp://",
        ),
        ("[log]\nqueue = 0\n", 2, "log.queue", ""),
        (
            "[policy]\npixel_max_px = 500\n",
            2,
            "policy.pixel_max_px",
            "between",
        ),
        (
            "[smtp]\nlisten = \"inet:127.0.0.1:10025\"\nforward = \"smtp://127.0.0.1:10025\"\n",
            3,
            "smtp.forward",
            "loop",
        ),
    ];
    for (text, line, key, part) in cases {
        let (l, k, m) = err(text);
        assert_eq!((l, k.as_str()), (*line, *key), "{text:?}: {m}");
        assert!(m.contains(part), "{text:?}: message {m:?} lacks {part:?}");
    }
}

#[test]
fn syntax_errors_have_a_line() {
    let (line, _, _) = err("[log]\npath = \"unterminated\n");
    assert_eq!(line, 2);
}

#[test]
fn relative_paths_follow_the_file() {
    let dir = std::env::temp_dir().join(format!("trackless-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("trackless.toml");
    std::fs::write(
        &path,
        "[policy]\nrules = [\"local.toml\", \"/abs.toml\"]\n[log]\npath = \"log.sqlite\"\n[batch]\nbackup = \"bk\"\n",
    )
    .expect("write");
    let c = Config::load(&path).expect("loads");
    assert_eq!(c.policy.rules[0], dir.join("local.toml"));
    assert_eq!(c.policy.rules[1], PathBuf::from("/abs.toml"));
    assert_eq!(
        c.log.path.as_deref(),
        Some(dir.join("log.sqlite").to_str().expect("utf8"))
    );
    assert_eq!(c.batch.backup.as_deref(), Some(dir.join("bk").as_path()));
    let missing = Config::load(&dir.join("nope.toml")).expect_err("missing");
    assert!(missing.to_string().contains("nope.toml"), "{missing}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn imap_accounts() {
    let text = r#"
[imap.work]
host = "imap.example.net"
user = "jane"
password_command = "pass show mail/work"
folders = ["INBOX", "Newsletters/*"]
originals = "folder:Old/Originals"
originals_retention = "14d"
since = "30d"
max_size = "20M"

[imap.home]
host = "127.0.0.1"
port = 1143
tls = "none"
insecure = true
user = "me"
password_command = "cat ~/.imap-pass"
auth = "login"
originals = "delete"
"#;
    let cfg = Config::parse(text, "t.toml").expect("valid");
    let work = &cfg.imap["work"];
    assert_eq!(work.port(), 993);
    assert_eq!(work.tls, ImapTls::Implicit);
    assert_eq!(work.auth, ImapAuth::Plain);
    assert_eq!(work.folders(), ["INBOX", "Newsletters/*"]);
    assert_eq!(work.originals(), Originals::Folder("Old/Originals".into()));
    let home = &cfg.imap["home"];
    assert_eq!((home.port(), home.auth), (1143, ImapAuth::Login));
    assert_eq!(home.originals(), Originals::Delete);
    assert_eq!(home.folders(), ["INBOX"]);

    // Clear text only to loopback, and only when asked for.
    let (line, key, msg) = err(
        "[imap.x]\nhost = \"imap.example.net\"\ntls = \"none\"\ninsecure = true\nuser = \"u\"\npassword_command = \"p\"\n",
    );
    assert_eq!((line, key.as_str()), (3, "imap.x.tls"));
    assert!(msg.contains("loopback"), "{msg}");
    let (_, key, _) = err(
        "[imap.x]\nhost = \"127.0.0.1\"\ntls = \"none\"\nuser = \"u\"\npassword_command = \"p\"\n",
    );
    assert_eq!(key, "imap.x.tls");
    let (line, key, _) = err(
        "[imap.x]\nhost = \"h\"\nuser = \"u\"\npassword_command = \"p\"\noriginals = \"trash\"\n",
    );
    assert_eq!((line, key.as_str()), (5, "imap.x.originals"));
    let (_, key, _) =
        err("[imap.x]\nhost = \"h\"\nuser = \"u\"\npassword_command = \"p\"\nsince = \"lately\"\n");
    assert_eq!(key, "imap.x.since");
    // A password in the file is not a key: the password comes from a command.
    let (_, key, _) = err("[imap.x]\nhost = \"h\"\nuser = \"u\"\npassword = \"secret\"\n");
    assert!(key.starts_with("imap.x"), "{key}");
}
