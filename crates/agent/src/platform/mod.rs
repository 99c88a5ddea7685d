//! The operating system's part: file events with the process behind them,
//! process facts, and signals. Linux is [`linux`]; a Windows layer (a
//! minifilter's events, `NtSuspendProcess`) would provide the same items.

use crate::content::Fingerprint;
use std::path::PathBuf;

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
pub use linux::{ProcInfo, Watcher, descendants, proc_info, signal_all};

/// What a file-event source reports.
#[derive(Debug)]
pub enum RawEvent {
    /// An event with the process behind it (fanotify).
    Process {
        /// The process.
        pid: i32,
        /// What `/proc` said of it when the event was read (None: it was
        /// already gone).
        proc: Option<ProcInfo>,
        /// The file or folder.
        path: PathBuf,
        /// What happened.
        kind: ProcessEventKind,
        /// A folder, not a file.
        is_dir: bool,
        /// The content's fingerprint (close events on files).
        fingerprint: Option<Fingerprint>,
    },
    /// Created (inotify: no process).
    Created(PathBuf, bool),
    /// Renamed (inotify).
    Renamed(PathBuf, PathBuf),
    /// Deleted (inotify).
    Deleted(PathBuf),
    /// An event queue overflowed: events were lost and the source needs a
    /// rescan.
    Overflow(&'static str),
    /// A folder could not be watched, or the source failed.
    WatchFailed(String),
}

/// The kinds of process-attributed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEventKind {
    /// Opened.
    Open,
    /// Written to (not yet closed).
    Modify,
    /// Closed after writing.
    CloseWrite,
    /// Closed after reading (or listing, for a folder).
    CloseRead,
}
