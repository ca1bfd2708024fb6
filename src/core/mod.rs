//! The pure core: bytes in, rewritten bytes and findings out. No I/O.

pub mod allow;
pub mod message;
pub mod operators;
pub mod policy;
pub mod rules;
pub mod sender;
pub mod stamp;
