//! trackless: neutralise email trackers before anyone opens the message.
//!
//! One pure core, [`neutralise`], takes the raw bytes of a message and returns the bytes to
//! deliver plus what was found. Adapters (filter, milter, content filter, batch) only move
//! bytes around it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// The engine: private, reached through `neutralise` and the types below.
mod core;
mod esp;
mod html;
mod links;
mod mail;
mod plain;

// Adapters and sinks: what the `trackless` command (and a program embedding it) runs.
pub mod allocator;
pub mod batch;
pub mod cli;
pub mod config;
pub mod dossier;
pub mod imap;
pub mod log;
pub mod serve;

pub use crate::core::message::neutralise;
pub use crate::core::operators::{Operator, Operators};
pub use crate::core::policy::{AllowList, Heuristics, Limits, OpaqueLinks, Policy};
pub use crate::core::rules::{RuleFile, Rules, RulesError};
pub use crate::mail::attribution::{Attribution, Confidence, Evidence, Layer, Signal};
pub use crate::mail::outcome::{
    Action, Counts, Finding, Kind, Outcome, Remote, Resource, SkipReason, REMOTE_MAX,
};
pub use crate::mail::trust::Trust;

/// Entry points below `neutralise` for the fuzz targets and tests (feature `test-hooks`; not
/// part of the API).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod internals {
    pub use crate::esp::attribute;
    pub use crate::html::rewrite::{rewrite, PartCtx};
    pub use crate::links::clearurls::ClearUrls;
    pub use crate::links::process;
    pub use crate::mail::encode::Cte;
    pub use crate::mail::header::top_block;
    pub use crate::mail::mime;
    pub use crate::mail::trace::Headers;
}
