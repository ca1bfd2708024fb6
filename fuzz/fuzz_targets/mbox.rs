//! mbox splitting and escaping.
//! The checks live in tests/common/fuzz_checks.rs, shared with tests/fuzz_regressions.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(init: fuzz_checks::warm(), |data: &[u8]| {
    fuzz_checks::mbox(data);
});
