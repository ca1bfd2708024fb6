//! Running the `trackless` binary the tests were built with.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The binary with nothing set: no configuration file named, the environment as inherited.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trackless"))
}

/// The binary with an empty configuration (`TRACKLESS_CONFIG=/dev/null`), so that no
/// configuration file of the machine running the tests changes what it does.
pub fn trackless() -> Command {
    let mut c = bin();
    c.env("TRACKLESS_CONFIG", "/dev/null");
    c
}

/// `trackless --no-log batch ARGS TARGET` with an empty configuration.
pub fn batch(args: &[&str], target: &Path) -> Command {
    let mut c = trackless();
    c.args(["--no-log", "batch"]).args(args).arg(target);
    c
}

/// `trackless --config FILE check-config` (the file named, no `TRACKLESS_CONFIG`).
pub fn check_config(config: &Path) -> Output {
    bin()
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .expect("run")
}

/// Start `cmd` with stdin, stdout and stderr piped.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Run `cmd` with `input` on its stdin (written by a thread, so a large output cannot block
/// the write); all of the input must be written.
pub fn feed(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = spawn_piped(cmd);
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    out
}

/// The run exited with `code`; its stderr is shown if not.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The run exited 0 (its stderr shown if not); its stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert_exit(out, 0);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
