//! `rxvault-agent`: the workstation ransomware detector.
//!
//! It watches folders in real time, scores each process (or process group)
//! over a sliding window from what it does to files, and at the threshold
//! stops it (SIGSTOP), reports, then kills or resumes it by policy. It never
//! keeps or sends file contents: a file is remembered as a
//! [`content::Fingerprint`] of a few dozen bytes, and a [`report::Report`]
//! carries signal names and counts.
//!
//! # Layout
//! - [`content`] and [`magic`]: what a file's bytes look like (entropy,
//!   chi-square, striped randomness, magic numbers, TLSH).
//! - [`score`]: the pure scoring engine (no I/O, no clock).
//! - [`canary`]: decoy files, placed and kept.
//! - [`report`]: reports, the [`report::Reporter`] trait, the bounded disk
//!   buffer.
//! - [`config`]: the TOML configuration.
//! - [`agent`]: the running loop (events → engine → response → reporter).
//! - [`platform`]: the operating system's part (Linux: fanotify, inotify,
//!   `/proc`, signals).
//! - [`testbed`]: corpus generator and ransomware simulator, confined to
//!   folders it created.
//!
//! # Example
//!
//! ```
//! use rxvault_agent::content::Fingerprint;
//! use rxvault_agent::score::{ActorKey, Engine, FileEvent, Thresholds};
//! use std::path::PathBuf;
//!
//! let mut engine = Engine::new(Thresholds::default());
//! engine.set_canaries([PathBuf::from("/srv/share/!!!_Accounts_2026.docx")]);
//! let actor = Some((ActorKey::Process(4242), 4242));
//! // A write to a canary is decisive.
//! let hit = engine.observe(
//!     10,
//!     actor,
//!     FileEvent::Written {
//!         path: PathBuf::from("/srv/share/!!!_Accounts_2026.docx"),
//!         after: Fingerprint::of_bytes(b"anything"),
//!     },
//! );
//! assert!(hit.is_some());
//! ```

pub mod agent;
pub mod canary;
pub mod config;
pub mod content;
pub mod magic;
pub mod platform;
pub mod report;
pub mod score;
pub mod testbed;
