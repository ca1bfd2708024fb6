//! Lenient base64 for link payloads: standard or URL-safe alphabet, padding optional.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);

/// Decode `s` in whichever alphabet it is written in. Payloads over 64 KiB are refused.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > 64 << 10 {
        return None;
    }
    let s = s.trim();
    if s.contains(['-', '_']) {
        URL_SAFE.decode(s).ok()
    } else {
        STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
    }
}

/// Decode to UTF-8 text.
pub fn decode_str(s: &str) -> Option<String> {
    String::from_utf8(decode(s)?).ok()
}
