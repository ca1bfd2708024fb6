//! trackless: neutralise email trackers before anyone opens the message.
//!
//! One pure core, [`neutralise`], takes the raw bytes of a message and returns the bytes to
//! deliver plus what was found. Adapters (filter, milter, content filter, batch) only move
//! bytes around it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod batch;
pub mod cli;
pub mod config;
pub mod core;
pub mod esp;
pub mod html;
pub mod links;
pub mod log;
pub mod mail;
pub mod plain;
pub mod serve;

pub use crate::core::message::neutralise;
pub use crate::core::policy::{Limits, Policy};
pub use crate::core::rules::Rules;
pub use crate::mail::outcome::{Action, Counts, Finding, Kind, Outcome, SkipReason};
