//! Rewriting `text/html` parts.

pub mod css;
pub mod pixel;
pub mod rewrite;
pub mod sheet_names;
pub mod srcset;
