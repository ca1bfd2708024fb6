//! The ground floor: mail as bytes and the plain types every layer shares. Header blocks and
//! trace headers, transfer encodings and charsets, HTML entities, URLs as rules see them,
//! findings and outcomes, attributions, trust. Imports nothing else of ours.

pub mod attribution;
pub mod encode;
pub mod entities;
pub mod header;
pub mod link;
pub mod matcher;
pub mod mime;
pub mod outcome;
pub mod pattern;
pub mod rule;
pub mod token;
pub mod trace;
pub mod trust;
pub mod url;
