//! Man pages and shell completions, as the Debian package builds them.

mod common;

use common::cli::trackless;

#[test]
fn man_pages_cover_every_command() {
    let dir = std::env::temp_dir().join(format!("trackless-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let st = trackless().arg("man").arg(&dir).status().expect("run");
    assert!(st.success());
    let main = std::fs::read_to_string(dir.join("trackless.1")).expect("trackless.1");
    assert!(main.contains(".TH trackless 1"), "{main}");
    for opt in [
        "\\-\\-config",
        "\\-\\-rules",
        "\\-\\-no\\-log",
        "check\\-config",
        "milter",
    ] {
        assert!(main.contains(opt), "trackless.1 lacks {opt}");
    }
    for sub in [
        "milter",
        "smtp",
        "lmtp",
        "pipe",
        "batch",
        "report",
        "check-config",
        "filter",
    ] {
        let page = std::fs::read_to_string(dir.join(format!("trackless-{sub}.1")))
            .unwrap_or_else(|e| panic!("trackless-{sub}.1: {e}"));
        assert!(
            page.contains(&format!(".TH trackless-{sub} 1")),
            "{sub}: {page}"
        );
    }
    assert!(
        !dir.join("trackless-man.1").exists(),
        "the hidden command has no page"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_trackless()"),
        ("zsh", "#compdef trackless"),
        ("fish", "complete -c trackless"),
    ] {
        let out = trackless()
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("check-config"),
            "{shell} completes sub-commands"
        );
    }
    // A broken configuration does not break completions.
    let out = common::cli::bin()
        .env("TRACKLESS_CONFIG", "/nonexistent.toml")
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
}
