//! A milter that does nothing useful at the cost of the least work: it takes the body and
//! gives it back unchanged as a body replacement, and adds one header field. Run by
//! `benches/postfix_newsletters.sh` (mode `milter-null`) as the ceiling of any milter that
//! rewrites every message: what Postfix itself spends on receiving a replaced body.
//!
//!   cargo run --release --example null_milter -- /path/to/milter.sock

use indymilter::{Actions, Callbacks, Config, ContextActions, ProtoOpts, Status};
use std::os::unix::fs::PermissionsExt;

fn main() {
    let path = std::env::args().nth(1).expect("socket path");
    let _ = std::fs::remove_file(&path);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let callbacks = Callbacks::<Vec<u8>>::new()
            .on_negotiate(|cx, _, opts| {
                Box::pin(async move {
                    // As trackless asks: no reply awaited before end of message.
                    cx.requested_opts = opts
                        & (ProtoOpts::NO_CONNECT
                            | ProtoOpts::NO_HELO
                            | ProtoOpts::NO_DATA
                            | ProtoOpts::NO_UNKNOWN
                            | ProtoOpts::NOREPLY_MAIL
                            | ProtoOpts::NOREPLY_RCPT
                            | ProtoOpts::NOREPLY_HEADER
                            | ProtoOpts::NOREPLY_EOH
                            | ProtoOpts::NOREPLY_BODY);
                    cx.requested_actions = Actions::ADD_HEADER | Actions::REPLACE_BODY;
                    Status::Continue
                })
            })
            .on_mail(|cx, _| {
                Box::pin(async move {
                    cx.data = Some(Vec::new());
                    Status::Continue
                })
            })
            .on_body(|cx, chunk| {
                Box::pin(async move {
                    if let Some(body) = cx.data.as_mut() {
                        body.extend_from_slice(&chunk);
                    }
                    Status::Continue
                })
            })
            .on_eom(|cx| {
                Box::pin(async move {
                    let body = cx.data.take().unwrap_or_default();
                    let _ = cx.actions.replace_body(&body).await;
                    let _ = cx.actions.add_header("X-Null-Milter", "1").await;
                    Status::Accept
                })
            });
        let config = Config {
            actions: Actions::ADD_HEADER | Actions::REPLACE_BODY,
            ..Config::default()
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("sig");
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = term.recv() => {}
            }
        };
        indymilter::run(listener, callbacks, config, stop)
            .await
            .expect("milter");
    });
}
