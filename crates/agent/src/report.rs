//! What the agent tells the server, and the on-disk buffer that keeps it
//! while the server is unreachable.
//!
//! A [`Report`] names the process (executable path and SHA-256), the score,
//! the **names** of the signals and **counts** of files: never a file's
//! name or content (a pharmacy's file names are often patients' names).
//!
//! [`DiskBuffer`] is a bounded JSON-lines file: each report is appended and
//! fsynced before `report` returns (it survives kill -9); when the file
//! would exceed its bound the oldest reports are dropped and a `dropped`
//! marker with their count takes their place, so a loss is never silent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A process crossed the threshold.
    Detection,
    /// A canary was touched by no process the agent could identify.
    CanaryUnattributed,
    /// The kernel's event queue overflowed: events were lost and the
    /// watched folders were rescanned.
    Overflow,
    /// A folder could not be watched (the watch limit, or an error).
    WatchFailed,
    /// The agent started watching.
    Started,
    /// Reports were dropped from a full buffer (`files_touched` holds the
    /// count).
    Dropped,
}

/// What was done to the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing (an alert only).
    None,
    /// Stopped (SIGSTOP), then killed by policy.
    Killed,
    /// Stopped, reported, then resumed by policy.
    Resumed,
    /// Stopped, reported, and left stopped by policy.
    Stopped,
    /// Could not be stopped (it had exited, or the signal failed).
    StopFailed,
}

/// One report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What it is about.
    pub kind: ReportKind,
    /// The host's name.
    pub host: String,
    /// The process's name (the executable's file name).
    pub process: Option<String>,
    /// Its pid.
    pub pid: Option<i32>,
    /// The executable's path.
    pub exe: Option<String>,
    /// The executable's SHA-256 (hex).
    pub exe_sha256: Option<String>,
    /// Points when it fired.
    pub score: u32,
    /// Signal names → files each was seen on.
    pub signals: BTreeMap<String, u32>,
    /// Files touched within the window (for `dropped`: reports dropped).
    pub files_touched: u64,
    /// Processes stopped with it (its group and children).
    #[serde(default)]
    pub processes_stopped: u32,
    /// What was done.
    pub action: Action,
    /// When (RFC 3339, UTC).
    pub at: String,
}

impl Report {
    /// A report with no process (alerts about the agent itself).
    pub fn alert(kind: ReportKind, host: &str, at: String) -> Self {
        Report {
            kind,
            host: host.to_string(),
            process: None,
            pid: None,
            exe: None,
            exe_sha256: None,
            score: 0,
            signals: BTreeMap::new(),
            files_touched: 0,
            processes_stopped: 0,
            action: Action::None,
            at,
        }
    }
}

/// Errors of reporting.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The buffer file could not be written or read.
    #[error("report buffer {path}: {source}")]
    Io {
        /// The buffer file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the buffer is not a report.
    #[error("report buffer {path} line {line}: {source}")]
    Corrupt {
        /// The buffer file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Where reports go. The buffer is one; the HTTPS reporter (with the host's
/// credential) is another, wrapping the buffer so nothing is lost while the
/// server is away.
pub trait Reporter: Send {
    /// Records a report durably (returns once it would survive a crash).
    fn report(&mut self, report: &Report) -> Result<(), ReportError>;
}

/// A bounded, fsynced JSON-lines buffer of reports (see the module docs).
#[derive(Debug)]
pub struct DiskBuffer {
    path: PathBuf,
    max_bytes: u64,
    file: File,
    len: u64,
}

impl DiskBuffer {
    /// Opens (or creates, 0600) the buffer at `path`, bounded to
    /// `max_bytes` (at least 4 KiB).
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, ReportError> {
        let io = |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_append(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(DiskBuffer {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(4096),
            file,
            len,
        })
    }

    /// The reports held, oldest first (a `dropped` marker first when some
    /// were dropped).
    pub fn pending(&self) -> Result<Vec<Report>, ReportError> {
        read_lines(&self.path)
    }

    /// Hands the held reports, oldest first, to `deliver` until it returns
    /// false; the delivered ones are removed. Returns how many were.
    pub fn drain(
        &mut self,
        mut deliver: impl FnMut(&Report) -> bool,
    ) -> Result<usize, ReportError> {
        let all = self.pending()?;
        let sent = all.iter().take_while(|r| deliver(r)).count();
        self.rewrite(&all[sent..])?;
        Ok(sent)
    }

    fn rewrite(&mut self, keep: &[Report]) -> Result<(), ReportError> {
        let io = |source| ReportError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io)?;
            for r in keep {
                f.write_all(&line(r)).map_err(io)?;
            }
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.file = open_append(&self.path).map_err(io)?;
        self.len = self.file.metadata().map_err(io)?.len();
        Ok(())
    }
}

impl Reporter for DiskBuffer {
    fn report(&mut self, report: &Report) -> Result<(), ReportError> {
        let bytes = line(report);
        if self.len + bytes.len() as u64 > self.max_bytes {
            // Drop the oldest reports (and fold an earlier marker into the
            // new one) until the new report fits beside the marker.
            let mut all = self.pending()?;
            let mut dropped = 0u64;
            if all.first().is_some_and(|r| r.kind == ReportKind::Dropped) {
                dropped += all.remove(0).files_touched;
            }
            let marker = |n: u64| {
                let mut m = Report::alert(ReportKind::Dropped, &report.host, report.at.clone());
                m.files_touched = n;
                m
            };
            let budget = self.max_bytes.saturating_sub(bytes.len() as u64);
            let mut size: u64 = all.iter().map(|r| line(r).len() as u64).sum();
            let mut start = 0;
            while start < all.len()
                && size + line(&marker(dropped + 1 + start as u64)).len() as u64 > budget
            {
                size -= line(&all[start]).len() as u64;
                start += 1;
            }
            dropped += start as u64;
            let mut keep = Vec::with_capacity(all.len() - start + 1);
            if dropped > 0 {
                keep.push(marker(dropped));
            }
            keep.extend_from_slice(&all[start..]);
            self.rewrite(&keep)?;
        }
        let io = |source| ReportError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&bytes).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

fn line(r: &Report) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).expect("a report serializes");
    v.push(b'\n');
    v
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn read_lines(path: &Path) -> Result<Vec<Report>, ReportError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReportError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (i, l) in BufReader::new(f).lines().enumerate() {
        let l = l.map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if l.is_empty() {
            continue;
        }
        match serde_json::from_str(&l) {
            Ok(r) => out.push(r),
            // A torn last line (killed mid-write, before its fsync): the
            // report was never acknowledged; everything before it was.
            Err(_) if i + 1 == count_lines(path) => break,
            Err(source) => {
                return Err(ReportError::Corrupt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                });
            }
        }
    }
    Ok(out)
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(i: u32) -> Report {
        let mut r = Report::alert(
            ReportKind::Detection,
            "ws-1",
            format!("2026-12-02T19:{:02}:00Z", i % 60),
        );
        r.score = i;
        r.signals.insert("entropy_rise".into(), 2);
        r
    }

    #[test]
    fn reports_survive_reopening_and_drain_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buffer.jsonl");
        {
            let mut b = DiskBuffer::open(&path, 1 << 20).unwrap();
            for i in 0..5 {
                b.report(&report(i)).unwrap();
            }
        }
        let mut b = DiskBuffer::open(&path, 1 << 20).unwrap();
        assert_eq!(b.pending().unwrap().len(), 5);
        // The server takes two, then is gone again.
        let mut seen = Vec::new();
        let sent = b
            .drain(|r| {
                seen.push(r.score);
                seen.len() <= 2
            })
            .unwrap();
        assert_eq!(sent, 2);
        assert_eq!(seen, vec![0, 1, 2]);
        let left: Vec<u32> = b.pending().unwrap().iter().map(|r| r.score).collect();
        assert_eq!(left, vec![2, 3, 4]);
        b.report(&report(9)).unwrap();
        assert_eq!(b.pending().unwrap().last().unwrap().score, 9);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buffer.jsonl");
        let mut b = DiskBuffer::open(&path, 4096).unwrap();
        for i in 0..200 {
            b.report(&report(i)).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        }
        let held = b.pending().unwrap();
        assert_eq!(held[0].kind, ReportKind::Dropped);
        let dropped = held[0].files_touched;
        let kept = held.len() as u64 - 1;
        assert_eq!(dropped + kept, 200, "every report is held or counted");
        // The newest are the ones kept, in order.
        let scores: Vec<u32> = held[1..].iter().map(|r| r.score).collect();
        let expect: Vec<u32> = (200 - kept as u32..200).collect();
        assert_eq!(scores, expect);
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_corruption_elsewhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buffer.jsonl");
        let mut b = DiskBuffer::open(&path, 1 << 20).unwrap();
        b.report(&report(1)).unwrap();
        b.report(&report(2)).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"kind\":\"detec").unwrap();
        assert_eq!(b.pending().unwrap().len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        assert!(matches!(
            b.pending(),
            Err(ReportError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn reports_carry_no_file_names() {
        let r = report(3);
        let json = serde_json::to_value(&r).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert!(
            !keys
                .iter()
                .any(|k| k.contains("path") || k.contains("file_name"))
        );
    }
}
