//! `report dossier --pdf`: the page printed to PDF by a headless Chromium, where one is
//! installed. Chromium only opens the local file (the page loads nothing, its CSP forbids
//! it) and is started with its own background traffic turned off and a throwaway profile.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browsers tried, in order (`TRACKLESS_CHROMIUM` names another).
const BROWSERS: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// How long printing may take.
const TIMEOUT: Duration = Duration::from_secs(90);

fn find_browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRACKLESS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    BROWSERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Print `html` (an absolute path) to `pdf`, readable by its owner only.
pub fn print(html: &Path, pdf: &Path) -> Result<(), String> {
    let browser = find_browser().ok_or_else(|| {
        format!(
            "--pdf needs Chromium ({} on PATH, or TRACKLESS_CHROMIUM)",
            BROWSERS.join(", ")
        )
    })?;
    let profile = private_dir()?;
    let mut cmd = Command::new(&browser);
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        "--no-pdf-header-footer",
        // Whatever Chromium still wants to reach on its own (its updater asks for Google hosts
        // even with the switches above): no name resolves, nothing connects.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ]);
    // Chromium refuses to run as root with its sandbox.
    if is_root() {
        cmd.arg("--no-sandbox");
    }
    cmd.arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(
            url::Url::from_file_path(html)
                .map_err(|()| format!("{}: not an absolute path", html.display()))?
                .as_str(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ = std::fs::remove_file(pdf);
    let result = run(cmd, &browser);
    let _ = std::fs::remove_dir_all(&profile);
    result?;
    let head =
        std::fs::read(pdf).map_err(|e| format!("{} wrote no PDF: {e}", browser.display()))?;
    if !head.starts_with(b"%PDF") {
        return Err(format!("{} did not write a PDF", browser.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pdf, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", pdf.display()))?;
    }
    Ok(())
}

/// A new folder only we can enter, for Chromium's profile (a name given in advance in the
/// shared temporary folder could be another user's folder or link).
fn private_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = String::new();
    for n in 0..16u32 {
        let dir = base.join(format!(
            "trackless-pdf-{}-{nanos:x}-{n}",
            std::process::id()
        ));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        match b.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = format!("{}: {e}", dir.display()),
        }
    }
    Err(format!("no folder for Chromium's profile: {last}"))
}

fn run(mut cmd: Command, browser: &Path) -> Result<(), String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", browser.display()))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("{} failed ({status})", browser.display()));
            }
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} s",
                    browser.display(),
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{}: {e}", browser.display())),
        }
    }
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}
