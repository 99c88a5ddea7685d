//! `rxvault-agent`: the workstation ransomware detector.
//!
//! # Layout
//! - [`content`] and [`magic`]: what a file's bytes look like (entropy,
//!   chi-square, striped randomness, magic numbers, TLSH), condensed into a
//!   [`content::Fingerprint`]; the agent never keeps file contents.
//! - [`score`]: the pure scoring engine (per-process sliding window).

pub mod agent;
pub mod canary;
pub mod config;
pub mod content;
pub mod magic;
pub mod platform;
pub mod report;
pub mod score;
pub mod testbed;
