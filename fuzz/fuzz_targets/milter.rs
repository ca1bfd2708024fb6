//! The milter glue (indymilter callbacks) fed a message as an MTA sends it: header fields one
//! by one (values as the MTA passes them, folded with bare LF), the body in chunks. Whatever
//! the message, the milter accepts it, and the message the MTA ends up with after applying
//! the milter's changes is byte for byte what `neutralise` makes of it (what
//! `trackless filter` writes). The first byte sets the number of body chunks and whether a
//! first attempt is aborted half way (state must not leak into the next message).
#![no_main]

use indymilter_test::{Actions, EomAction, ProtoOpts, Status, TestConnection};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::runtime::Runtime;
use trackless::log::Keep;
use trackless::serve::{milter, Overload, Shared};
use trackless::{neutralise, Policy};

struct World {
    rt: Runtime,
    sock: PathBuf,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir =
            std::env::temp_dir().join(format!("trackless-fuzz-milter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("milter.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = rt
            .block_on(async { tokio::net::UnixListener::bind(&sock) })
            .expect("bind");
        let shared = Arc::new(Shared::new(
            Policy::default(),
            1,
            Overload::Accept,
            None,
            Keep::default(),
            None,
        )
        .expect("threads"));
        rt.spawn(milter::run_until(
            listener,
            shared,
            16,
            std::future::pending::<()>(),
        ));
        World { rt, sock }
    })
}

/// The message as an MTA hands it over: fields (name, value as after the colon, folds as
/// bare LF) and the body. A line that is not a field ends the header block (it and what
/// follows are body, as for an MTA).
fn split(data: &[u8]) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>) {
    let text: Vec<u8> = data.iter().copied().filter(|&b| b != 0).collect();
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].strip_suffix(b"\r").unwrap_or(lines[i]);
        if line.is_empty() {
            i += 1;
            break;
        }
        if matches!(line[0], b' ' | b'\t') && !fields.is_empty() {
            let last = fields.last_mut().expect("a field");
            last.1.push(b'\n');
            last.1.extend_from_slice(line);
            i += 1;
            continue;
        }
        match line.iter().position(|&b| b == b':') {
            Some(c) if c > 0 && line[..c].iter().all(|&b| b > b' ' && b < 127) => {
                fields.push((line[..c].to_vec(), line[c + 1..].to_vec()));
                i += 1;
            }
            _ => break,
        }
    }
    let mut body = Vec::new();
    for line in &lines[i..] {
        body.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        body.extend_from_slice(b"\r\n");
    }
    (fields, body)
}

fn rebuild(fields: &[(Vec<u8>, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    for (n, v) in fields {
        raw.extend_from_slice(n);
        raw.push(b':');
        for (k, part) in v.split(|&b| b == b'\n').enumerate() {
            if k > 0 {
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(part);
        }
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

async fn send(
    conn: &mut TestConnection,
    fields: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
    chunks: usize,
    abort_after_headers: bool,
) -> Option<Vec<EomAction>> {
    conn.mail(["<news@shop.example>"]).await.expect("mail");
    conn.rcpt(["<reader@example.net>"]).await.expect("rcpt");
    for (n, v) in fields {
        let name = std::ffi::CString::new(n.clone()).expect("no NUL in a field name");
        let value = std::ffi::CString::new(v.clone()).expect("no NUL in a field value");
        conn.header(name, value).await.expect("header");
    }
    if abort_after_headers {
        conn.abort().await.expect("abort");
        return None;
    }
    conn.eoh().await.expect("eoh");
    let size = body.len().div_ceil(chunks).max(1);
    for c in body.chunks(size) {
        conn.body(c.to_vec()).await.expect("body");
    }
    let (actions, status) = conn.eom().await.expect("eom");
    assert_eq!(
        status,
        Status::Accept,
        "the milter must accept every message"
    );
    Some(actions.actions)
}

/// Apply the milter's changes as the MTA would.
fn apply(fields: &[(Vec<u8>, Vec<u8>)], body: &[u8], actions: &[EomAction]) -> Vec<u8> {
    let mut fields = fields.to_vec();
    let mut new_body: Option<Vec<u8>> = None;
    for a in actions {
        match a {
            EomAction::ReplaceBody { chunk } => new_body
                .get_or_insert_with(Vec::new)
                .extend_from_slice(chunk),
            EomAction::AddHeader { name, value } => {
                fields.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            }
            EomAction::ChangeHeader { name, index, value } => {
                let nth = nth_field(&fields, name.as_bytes(), *index);
                match nth {
                    Some(k) => fields[k].1 = value.as_bytes().to_vec(),
                    None => fields.push((name.as_bytes().to_vec(), value.as_bytes().to_vec())),
                }
            }
            EomAction::DeleteHeader { name, index } => {
                if let Some(k) = nth_field(&fields, name.as_bytes(), *index) {
                    fields.remove(k);
                }
            }
            other => panic!("unexpected milter action {other:?}"),
        }
    }
    rebuild(&fields, new_body.as_deref().unwrap_or(body))
}

fn nth_field(fields: &[(Vec<u8>, Vec<u8>)], name: &[u8], index: i32) -> Option<usize> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
        .nth(usize::try_from(index).ok()?.checked_sub(1)?)
        .map(|(k, _)| k)
}

fuzz_target!(init: { let _ = world(); }, |data: &[u8]| {
    let Some((&mode, msg)) = data.split_first() else {
        return;
    };
    let (fields, body) = split(msg);
    let raw = rebuild(&fields, &body);
    let expected = neutralise(&raw, &Policy::default());
    let chunks = 1 + (mode & 7) as usize;
    let w = world();
    let got = w.rt.block_on(async {
        let mut conn = TestConnection::configure()
            .available_actions(Actions::all())
            .available_opts(ProtoOpts::all())
            .exact_leading_space(true)
            .read_timeout(Duration::from_secs(5))
            .write_timeout(Duration::from_secs(5))
            .open_unix(&w.sock)
            .await
            .expect("connect to the milter");
        if mode & 8 != 0 {
            send(&mut conn, &fields, &body, chunks, true).await;
        }
        let actions = send(&mut conn, &fields, &body, chunks, false)
            .await
            .expect("actions");
        let _ = conn.close().await;
        actions
    });
    let delivered = apply(&fields, &body, &got);
    assert!(
        delivered == expected.bytes.as_ref(),
        "the MTA would deliver something else than trackless filter writes:\n{}\n---- filter:\n{}",
        String::from_utf8_lossy(&delivered),
        String::from_utf8_lossy(&expected.bytes)
    );
});
