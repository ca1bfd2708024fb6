//! The pure core: bytes in, rewritten bytes and findings out. No I/O.

pub mod allow;
pub mod encode;
pub mod header;
pub mod message;
pub mod outcome;
pub mod policy;
