//! The milter session fed what a broken or hostile MTA could send, over an in-memory stream:
//! packets in any order, lengths that lie, payloads cut short, unknown codes, a body without
//! headers, a second negotiation, bytes after QUIT. The first byte picks how the rest is read:
//! even, as packets described by a code, a 16-bit little-endian payload length and the payload
//! (framed for us, so that the fuzzer reaches the stages after the negotiation); odd, as raw
//! bytes written as they are. The session must end (EOF after the input) without panicking,
//! within the time bound, and what it wrote must be whole milter packets with reply codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use trackless::log::Keep;
use trackless::serve::milter::session;
use trackless::serve::{Overload, Shared};
use trackless::Policy;

struct World {
    rt: Runtime,
    shared: Arc<Shared>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
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
        World { rt, shared }
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

fuzz_target!(init: { let _ = world(); }, |data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let w = world();
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
        assert!(len >= 1 && rest.len() >= 4 + len, "a reply packet longer than what was written");
        assert!(
            // accept, replace body, continue, add header, change header, negotiate, tempfail
            matches!(rest[4], b'a' | b'b' | b'c' | b'h' | b'm' | b'O' | b't'),
            "unknown reply code {:?}",
            rest[4] as char
        );
        rest = &rest[4 + len..];
    }
});
