//! The milter session fed what a broken or hostile MTA could send, over an in-memory stream:
//! packets in any order, lengths that lie, payloads cut short, unknown codes, a body without
//! headers, a second negotiation, bytes after QUIT. The first byte picks how the rest is read:
//! even, as packets described by a code, a 16-bit little-endian payload length and the payload
//! (framed for us, so that the fuzzer reaches the stages after the negotiation); odd, as raw
//! bytes written as they are. The session must end (EOF after the input) without panicking,
//! within the time bound, and what it wrote must be whole milter packets with reply codes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(init: fuzz_checks::warm_milter_wire(), |data: &[u8]| {
    fuzz_checks::milter_wire(data)
});
