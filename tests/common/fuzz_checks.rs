//! What each fuzz target checks, one function per target, shared by the targets (`fuzz/`,
//! which include this file by path) and by `tests/fuzz_regressions.rs`, which replays every
//! reproducer the fuzzers found (`fuzz/regressions/TARGET/`) in plain `cargo test`. Each
//! function panics when a property breaks.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use trackless::batch::mbox::{escape, split_trailer, unescape, Flavor, Reader};
use trackless::config::Config;
use trackless::internals::ClearUrls;
use trackless::log::Keep;
use trackless::serve::milter::{reply, session};
use trackless::serve::{Overload, Shared};
use trackless::OpaqueLinks;
use trackless::Policy;
use trackless::{RuleFile, Rules};

#[path = "invariants.rs"]
mod invariants;

/// Build what every target shares (the compiled rules and policies) before fuzzing starts,
/// so that the first input of a run is not charged for it (with `-timeout=1` under load that
/// was reported as a hang).
pub fn warm() {
    let _ = policy(false);
    let _ = policy(true);
    let _ = embedded();
}

/// The default policy and the one with `opaque_links = mark`.
fn policy(marked: bool) -> &'static Policy {
    &policies()[marked as usize]
}

/// The same two policies with every encoded HTML part streamed (decoded, rewritten and encoded
/// again a piece at a time, as the parts of 4 MiB and more are), which must give the same
/// outcome.
fn streamed(marked: bool) -> &'static Policy {
    &policies()[2 + marked as usize]
}

fn policies() -> &'static [Policy; 4] {
    static P: OnceLock<[Policy; 4]> = OnceLock::new();
    P.get_or_init(|| {
        let marked = Policy {
            opaque_links: OpaqueLinks::Mark,
            ..Policy::default()
        };
        let stream = |p: &Policy| Policy {
            limits: trackless::Limits {
                stream_above: 0,
                ..p.limits.clone()
            },
            ..p.clone()
        };
        let (s, sm) = (stream(&Policy::default()), stream(&marked));
        [Policy::default(), marked, s, sm]
    })
}

/// `message`: the whole message through `neutralise` (first byte: bit 0 picks the link mode),
/// with every property of `invariants::check`; bit 1: also with every encoded HTML part
/// streamed, the same outcome required; then the tracking-log row every adapter builds from it
/// (which parses the header block again, outside the core's panic guard).
pub fn message(data: &[u8]) {
    let Some((&mode, raw)) = data.split_first() else {
        return;
    };
    let policy = policy(mode & 1 == 1);
    let out = trackless::neutralise(raw, policy);
    if let Err(e) = invariants::check_outcome(raw, &out, policy) {
        panic!("{e}");
    }
    if mode & 2 == 2 {
        let s = trackless::neutralise(raw, streamed(mode & 1 == 1));
        // The whole-part path copies the quoted-printable lines a rewrite left, the streamed
        // one encodes anew: the same text and the same bytes around it.
        assert!(
            s.bytes == out.bytes
                || invariants::as_read(&s.bytes) == invariants::as_read(&out.bytes),
            "streamed parts: other content"
        );
        assert_eq!(
            format!("{:?} {:?}", s.findings, s.remote),
            format!("{:?} {:?}", out.findings, out.remote),
            "streamed parts: other findings"
        );
    }
    let keep = trackless::log::Keep {
        subject: true,
        recipients: true,
        headers: true,
        ..Default::default()
    };
    let _ = trackless::log::Record::new(
        raw,
        &out,
        trackless::log::Mode::Batch,
        Some("bounce@shop.example"),
        &["reader@example.net".to_string()],
        keep,
        0,
    );
}

/// `html_body` / `text_body`: a body wrapped in a minimal message (`body_message`), then the
/// same checks as `message`.
pub fn body(subtype: &str, data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let raw = body_message(subtype, mode, body);
    if let Err(e) = invariants::check(&raw, policy((mode >> 4) & 1 == 1)) {
        panic!("{e}");
    }
}

const CHARSETS: [&str; 8] = [
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "iso-8859-15",
    "shift_jis",
    "gb18030",
    "koi8-r",
];

/// A minimal message around `body`. `mode` bits 0-2: the charset label; bit 3: base64 (else
/// quoted-printable, both written here so that any bytes reach the rewriter as given); bit 4:
/// the link mode.
pub fn body_message(subtype: &str, mode: u8, body: &[u8]) -> Vec<u8> {
    let charset = CHARSETS[(mode & 7) as usize];
    let (cte, encoded) = if mode & 8 != 0 {
        ("base64", base64(body))
    } else {
        ("quoted-printable", qp(body))
    };
    let mut m = format!(
        "From: Shop <news@shop.example>\r\nTo: reader@example.net\r\nSubject: fuzz\r\n\
         Message-ID: <1@shop.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/{subtype}; charset=\"{charset}\"\r\n\
         Content-Transfer-Encoding: {cte}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&encoded);
    m.extend_from_slice(b"\r\n");
    m
}

fn base64(b: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(b.len() * 4 / 3 + b.len() / 57 * 2 + 4);
    for (i, c) in b.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.extend_from_slice(b"\r\n");
        }
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63]);
        out.push(A[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

/// Quoted-printable with CRLF for the body's own line breaks (a lone CR is encoded).
fn qp(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() * 2);
    let mut col = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' || (c == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            out.extend_from_slice(b"\r\n");
            col = 0;
            i += if c == b'\r' { 2 } else { 1 };
            continue;
        }
        let next_is_break = matches!(b.get(i + 1), None | Some(b'\n') | Some(b'\r'));
        let plain = (c == b'\t' || (b' '..=b'~').contains(&c)) && c != b'=';
        let plain = plain && !((c == b' ' || c == b'\t') && next_is_break);
        let w = if plain { 1 } else { 3 };
        if col + w > 75 {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        if plain {
            out.push(c);
        } else {
            out.extend_from_slice(format!("={c:02X}").as_bytes());
        }
        col += w;
        i += 1;
    }
    out
}

fn embedded() -> &'static Arc<Rules> {
    static R: OnceLock<Arc<Rules>> = OnceLock::new();
    R.get_or_init(Rules::embedded)
}

/// `link`: one URL through the link pipeline. What comes out is nothing (kept as is) or an
/// absolute http(s) URL with a host, and a fixed point: processing it again gives nothing new.
pub fn link(data: &[u8]) {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    let Some(res) = trackless::internals::process(link, &embedded().links()) else {
        return;
    };
    let Some(new) = &res.new_url else {
        return;
    };
    let u = url::Url::parse(new).unwrap_or_else(|e| panic!("new URL {new:?} does not parse: {e}"));
    assert!(matches!(u.scheme(), "http" | "https"), "{new}");
    assert!(u.host_str().is_some_and(|h| !h.is_empty()), "{new}");
    if let Some(again) = trackless::internals::process(new, &embedded().links()) {
        assert!(
            again.new_url.as_deref().is_none_or(|n| n == new),
            "not a fixed point: {link:?} -> {new:?} -> {:?}",
            again.new_url
        );
    }
}

/// `mbox`: any bytes read as an mbox split into pieces that put back together give the input
/// from its first separator on; two messages made of the input, written with the escaping of
/// the first byte's flavour, read back as exactly two, and (mboxrd) unescape to what was
/// written.
pub fn mbox(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut joined = Vec::new();
    for item in Reader::new(rest) {
        let (sep, body) = item.expect("reading from memory cannot fail");
        joined.extend_from_slice(&sep);
        joined.extend_from_slice(&body);
    }
    assert!(
        rest.ends_with(&joined),
        "split and joined differs from the input"
    );

    let flavor = if mode & 1 == 0 {
        Flavor::Mboxo
    } else {
        Flavor::Mboxrd
    };
    let cut = (mode as usize * rest.len()) / 256;
    let sep = b"From sender@example.net Mon Nov 30 10:00:00 2026\n";
    let mut mbox = Vec::new();
    let mut written = Vec::new();
    for m in [&rest[..cut], &rest[cut..]] {
        let mut m = m.to_vec();
        if !m.ends_with(b"\n") {
            m.push(b'\n');
        }
        mbox.extend_from_slice(sep);
        mbox.extend_from_slice(&escape(&m, flavor));
        mbox.push(b'\n');
        written.push(m);
    }
    let read: Vec<_> = Reader::new(&mbox[..])
        .collect::<Result<_, _>>()
        .expect("reading from memory cannot fail");
    assert_eq!(read.len(), 2, "two messages written, {} read", read.len());
    if flavor == Flavor::Mboxrd {
        for ((_, stored), m) in read.iter().zip(&written) {
            let (msg, _) = split_trailer(stored);
            assert_eq!(&unescape(msg, flavor), m);
        }
    }
}

/// `config`: any text gives a configuration or an error that names the file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, "fuzz.toml") {
        let msg = e.to_string();
        assert!(
            msg.starts_with("fuzz.toml"),
            "error without its origin: {msg}"
        );
    }
}

const NEWSLETTER: &[u8] = include_bytes!("../../corpus/mailgun-newsletter.eml");

/// `rules`: a user rules file is compiled or refused; rules that compile are used on a real
/// newsletter, which must still pass every check (a user's rule must not make the core panic).
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = RuleFile::parse(text, "fuzz.toml") else {
        return;
    };
    let Ok(rules) = Rules::compile(file, "fuzz.toml") else {
        return;
    };
    if let Err(e) = invariants::check(NEWSLETTER, &Policy::with_rules(rules)) {
        panic!("{e}");
    }
}

const URLS: &[&str] = &[
    "https://www.example.com/?utm_source=x&id=1",
    "https://www.google.com/url?q=https%3A%2F%2Fshop.example%2F&sa=D",
    "https://shop.example/p?ref=abc#frag",
    "http://x.example/redirect?to=https://y.example/",
    "https://\u{e9}.example/\u{20ac}?a=\u{1f600}",
];

/// `clearurls`: any JSON gives a catalog or an error; a catalog applied to fixed URLs and to
/// the strings in the input never panics, and cleaning is idempotent.
pub fn clearurls(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cat) = ClearUrls::parse(json) else {
        return;
    };
    let found = json
        .split('"')
        .filter(|s| s.starts_with("http"))
        .take(8)
        .collect::<Vec<_>>();
    for url in URLS.iter().copied().chain(found) {
        let _ = cat.redirect(url);
        let _ = cat.complete(url);
        if let Some((cleaned, _)) = cat.clean(url) {
            assert!(
                cat.clean(&cleaned)
                    .is_none_or(|(again, _)| again == cleaned),
                "clean({url:?}) = {cleaned:?} is not clean"
            );
        }
    }
}

struct MilterWorld {
    rt: Runtime,
    shared: Arc<Shared>,
}

fn milter_world() -> &'static MilterWorld {
    static W: OnceLock<MilterWorld> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let shared = Arc::new(
            Shared::new(
                Policy::default(),
                1,
                Overload::Accept,
                None,
                Keep::default(),
                None,
            )
            .expect("threads"),
        );
        MilterWorld { rt, shared }
    })
}

/// The bytes an MTA sends: the input framed as packets (code, u16 LE length, payload), or
/// the input itself.
fn wire(mode: u8, input: &[u8]) -> Vec<u8> {
    if mode & 1 == 1 {
        return input.to_vec();
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    let mut rest = input;
    while let Some((&code, after)) = rest.split_first() {
        let (len, after) = match after {
            [a, b, tail @ ..] => (u16::from_le_bytes([*a, *b]) as usize, tail),
            _ => (after.len(), &after[after.len()..]),
        };
        let take = len.min(after.len());
        out.extend_from_slice(&(take as u32 + 1).to_be_bytes());
        out.push(code);
        out.extend_from_slice(&after[..take]);
        rest = &after[take..];
    }
    out
}

/// Start the milter target's runtime and threads before fuzzing (see [`warm`]).
pub fn warm_milter_wire() {
    let _ = milter_world();
}

/// The milter session fed `data` as a broken MTA's bytes (see `fuzz/fuzz_targets/milter_wire.rs`):
/// it ends on EOF within the time bound and writes only whole packets with its reply codes.
pub fn milter_wire(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let w = milter_world();
    let shared = w.shared.clone();
    let bytes = wire(mode, input);
    let replies = w.rt.block_on(async move {
        let (mut mta, milter) = tokio::io::duplex(1 << 16);
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(session(milter, shared, stop));
        let talk = async {
            let (mut rd, mut wr) = tokio::io::split(&mut mta);
            let write = async {
                let _ = wr.write_all(&bytes).await;
                let _ = wr.shutdown().await;
            };
            let mut replies = Vec::new();
            let read = rd.read_to_end(&mut replies);
            let (_, r) = tokio::join!(write, read);
            let _ = r;
            replies
        };
        let replies = tokio::time::timeout(Duration::from_secs(5), talk)
            .await
            .expect("session did not end within 5 s of its input");
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("session task failed: {e}"),
            Err(_) => panic!("session did not end"),
        }
        replies
    });
    // Whole packets, each with a reply code the protocol has.
    let mut rest = &replies[..];
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "a cut reply packet: {rest:?}");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(
            len >= 1 && rest.len() >= 4 + len,
            "a reply packet longer than what was written"
        );
        assert!(
            matches!(
                rest[4],
                reply::ACCEPT
                    | reply::REPLACE_BODY
                    | reply::CONTINUE
                    | reply::ADD_HEADER
                    | reply::CHANGE_HEADER
                    | reply::OPTNEG
                    | reply::TEMPFAIL
            ),
            "unknown reply code {:?}",
            rest[4] as char
        );
        rest = &rest[4 + len..];
    }
}
