//! The running agent: platform events → attribution → the scoring engine →
//! the response (stop, report, kill or resume) → the reporter.
//!
//! The response stops first (SIGSTOP is cheap and reversible), reports, then
//! applies the policy. An allow-listed process (executable path **and**
//! SHA-256 of the running image, read through `/proc/PID/exe`) is not
//! scored; its writes only refresh the fingerprints.

use crate::canary;
use crate::config::{Config, Policy};
use crate::platform::{self, ProcInfo, ProcessEventKind, RawEvent};
use crate::report::{Action, Report, ReportError, ReportKind, Reporter};
use crate::score::{ActorKey, Detection, Engine, FileEvent};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use nix::sys::signal::Signal;
use rxvault_model::Clock;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Errors of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The watchers could not start.
    #[error(transparent)]
    Watch(#[from] platform::linux::WatchError),
    /// A report could not be recorded.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A watched folder is missing.
    #[error("watched folder {0} does not exist")]
    MissingFolder(PathBuf),
}

/// Counters, for the log and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Events received from the platform.
    pub events: u64,
    /// Overflows (each followed by a rescan and a report).
    pub overflows: u64,
    /// Detections.
    pub detections: u64,
}

/// The agent (see the module docs).
pub struct Agent {
    cfg: Config,
    host: String,
    engine: Engine,
    watcher: platform::Watcher,
    rx: Receiver<RawEvent>,
    reporter: Box<dyn Reporter>,
    clock: Arc<dyn Clock>,
    epoch: Instant,
    procs: HashMap<i32, ProcInfo>,
    allowed: HashMap<(i32, u64), bool>,
    hashes: HashMap<(u64, u64, i64, i64, u64), String>,
    ancestors: HashSet<i32>,
    canaries: Vec<PathBuf>,
    /// Actors already dealt with, until when their queued events are
    /// ignored (a killed process's last events, a resumed one's backlog).
    responded: HashMap<ActorKey, u64>,
    stats: Stats,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("host", &self.host)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Agent {
    /// Places the canaries, starts the watchers, fingerprints the watched
    /// files and reports `started`.
    pub fn start(
        cfg: Config,
        reporter: Box<dyn Reporter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AgentError> {
        for w in &cfg.watch {
            if !w.is_dir() {
                return Err(AgentError::MissingFolder(w.clone()));
            }
        }
        let mut cfg = cfg;
        // `/proc/PID/exe` names the real file: compare against the
        // allow-list's paths with their symlinks resolved.
        for a in &mut cfg.allow {
            if let Ok(real) = a.path.canonicalize() {
                a.path = real;
            }
        }
        let host = cfg.host.clone().unwrap_or_else(host_name);
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut engine = Engine::new(cfg.thresholds);
        let (canaries, failed) = if cfg.canaries {
            canary::place(&canary::folders(&cfg.watch, cfg.canary_depth))
        } else {
            (Vec::new(), Vec::new())
        };
        engine.set_canaries(canaries.iter().cloned());
        let executables: Vec<PathBuf> = cfg.allow.iter().map(|a| a.path.clone()).collect();
        let watcher = platform::Watcher::start(&cfg.watch, &executables, tx)?;
        let mut ancestors = HashSet::new();
        let mut p = std::process::id() as i32;
        while p > 1 && ancestors.insert(p) {
            p = platform::proc_info(p).map_or(0, |i| i.ppid);
        }
        let mut agent = Agent {
            cfg,
            host,
            engine,
            watcher,
            rx,
            reporter,
            clock,
            epoch: Instant::now(),
            procs: HashMap::new(),
            allowed: HashMap::new(),
            hashes: HashMap::new(),
            ancestors,
            canaries,
            responded: HashMap::new(),
            stats: Stats::default(),
        };
        agent.mark_canaries();
        for (path, e) in failed {
            tracing::warn!(canary = %path.display(), error = %e, "cannot place a canary");
        }
        agent.rescan();
        let r = Report::alert(ReportKind::Started, &agent.host, agent.now());
        agent.reporter.report(&r)?;
        tracing::info!(
            folders = agent.cfg.watch.len(),
            canaries = agent.canaries.len(),
            fingerprints = agent.engine.fingerprints(),
            "watching"
        );
        Ok(agent)
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Stats, AgentError> {
        while !stop.load(Ordering::Relaxed) {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(ev) => self.handle(ev)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(self.stats)
    }

    /// Handles every event already queued, then returns.
    pub fn poll(&mut self) -> Result<(), AgentError> {
        while let Ok(ev) = self.rx.try_recv() {
            self.handle(ev)?;
        }
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The canaries placed.
    pub fn canaries(&self) -> &[PathBuf] {
        &self.canaries
    }

    fn now(&self) -> String {
        self.clock
            .now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Fingerprints every file under the watched folders (start-up, and
    /// after an overflow lost events), and puts back missing canaries.
    fn rescan(&mut self) {
        let limit = self.engine.thresholds().fingerprint_cache;
        let mut n = 0;
        for root in self.cfg.watch.clone() {
            for dir in platform::linux::walk_dirs(&root) {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.filter_map(Result::ok) {
                    if n >= limit {
                        return;
                    }
                    if e.file_type().is_ok_and(|t| t.is_file())
                        && let Some(fp) = platform::linux::sample_path(&e.path())
                    {
                        self.engine.remember(e.path(), fp);
                        n += 1;
                    }
                }
            }
        }
        if self.cfg.canaries {
            let (canaries, _) =
                canary::place(&canary::folders(&self.cfg.watch, self.cfg.canary_depth));
            self.engine.set_canaries(canaries.iter().cloned());
            self.canaries = canaries;
            self.mark_canaries();
        }
    }

    /// Records a fingerprint without scoring: a write's replaces the
    /// previous one; a read's (taken when the event is handled, possibly
    /// after a later write) only fills a gap.
    fn keep_current(
        &mut self,
        kind: ProcessEventKind,
        is_dir: bool,
        path: PathBuf,
        fingerprint: Option<crate::content::Fingerprint>,
    ) {
        let (Some(fp), false) = (fingerprint, is_dir) else {
            return;
        };
        match kind {
            ProcessEventKind::CloseWrite => self.engine.remember(path, fp),
            _ => self.engine.remember_if_absent(path, fp),
        }
    }

    fn mark_canaries(&self) {
        for c in &self.canaries {
            if let Err(e) = self.watcher.mark_canary(c) {
                tracing::warn!(canary = %c.display(), error = %e, "cannot mark a canary");
            }
        }
    }

    fn handle(&mut self, ev: RawEvent) -> Result<(), AgentError> {
        self.stats.events += 1;
        let at = self.millis();
        let detection = match ev {
            RawEvent::Process {
                pid,
                proc,
                path,
                kind,
                is_dir,
                fingerprint,
            } => {
                if let Some(info) = &proc {
                    self.remember_proc(info);
                }
                let Some(info) = proc.or_else(|| self.procs.get(&pid).cloned()) else {
                    // Gone before it could be looked at: keep the content
                    // current, score nobody.
                    self.keep_current(kind, is_dir, path, fingerprint);
                    return Ok(());
                };
                if self.is_allowed(&info) {
                    self.keep_current(kind, is_dir, path, fingerprint);
                    return Ok(());
                }
                let event = match (kind, is_dir, fingerprint) {
                    (ProcessEventKind::Open, _, _) => None,
                    (ProcessEventKind::Modify, false, _) if self.engine.is_canary(&path) => {
                        Some(FileEvent::Modified { path })
                    }
                    (ProcessEventKind::Modify, _, _) => None,
                    (ProcessEventKind::CloseWrite, false, Some(after)) => {
                        Some(FileEvent::Written { path, after })
                    }
                    (ProcessEventKind::CloseWrite, _, _) => None,
                    (ProcessEventKind::CloseRead, true, _) => Some(FileEvent::Listed { dir: path }),
                    (ProcessEventKind::CloseRead, false, fingerprint) => {
                        Some(FileEvent::Read { path, fingerprint })
                    }
                };
                let actor = self.actor_of(&info);
                if self.responded.get(&actor).is_some_and(|&until| at < until) {
                    return Ok(());
                }
                event.and_then(|e| self.engine.observe(at, Some((actor, pid)), e))
            }
            RawEvent::Created(path, is_dir) => {
                if is_dir {
                    // Marked now; whatever it already holds (written before
                    // the mark) is fingerprinted so later writes compare.
                    for dir in platform::linux::walk_dirs(&path) {
                        if let Err(e) = self.watcher.mark(&dir) {
                            tracing::warn!(error = %e, "cannot mark a new folder");
                        }
                        let entries = std::fs::read_dir(&dir).into_iter().flatten();
                        for f in entries.filter_map(Result::ok) {
                            if let Some(fp) = platform::linux::sample_path(&f.path()) {
                                self.engine.remember_if_absent(f.path(), fp);
                            }
                        }
                    }
                }
                self.engine.observe(at, None, FileEvent::Created { path })
            }
            RawEvent::Renamed(from, to) => {
                self.engine
                    .observe(at, None, FileEvent::Renamed { from, to })
            }
            RawEvent::Deleted(path) => self.engine.observe(at, None, FileEvent::Deleted { path }),
            RawEvent::Overflow(source) => {
                self.stats.overflows += 1;
                tracing::error!(source, "event queue overflow: events were lost; rescanning");
                let mut r = Report::alert(ReportKind::Overflow, &self.host, self.now());
                r.signals.insert(format!("overflow_{source}"), 1);
                self.reporter.report(&r)?;
                self.rescan();
                None
            }
            RawEvent::WatchFailed(message) => {
                tracing::error!(%message, "watch failed");
                let r = Report::alert(ReportKind::WatchFailed, &self.host, self.now());
                self.reporter.report(&r)?;
                None
            }
        };
        if let Some(d) = detection {
            self.respond(d)?;
        }
        Ok(())
    }

    fn remember_proc(&mut self, info: &ProcInfo) {
        if self.procs.len() > 4096 {
            self.procs.clear();
        }
        self.procs.insert(info.pid, info.clone());
    }

    fn proc(&mut self, pid: i32) -> Option<ProcInfo> {
        match platform::proc_info(pid) {
            Some(mut info) => {
                if let Some(known) = self.procs.get(&pid)
                    && known.start == info.start
                    && info.exe.is_none()
                {
                    info.exe = known.exe.clone();
                }
                self.remember_proc(&info);
                Some(info)
            }
            None => self.procs.get(&pid).cloned(),
        }
    }

    /// A process group is scored as one when it is a job of its own (not a
    /// session leader's group, not the agent's or one of its ancestors').
    ///
    /// Otherwise a process whose parent runs the same executable (a worker
    /// it forked) is scored with its parent's family.
    fn actor_of(&mut self, info: &ProcInfo) -> ActorKey {
        let own_group = nix::unistd::getpgrp().as_raw();
        if info.pgid > 1
            && info.pgid != info.sid
            && info.pgid != own_group
            && !self.ancestors.contains(&info.pgid)
        {
            return ActorKey::Group(info.pgid);
        }
        let parent = if info.ppid > 1 && !self.ancestors.contains(&info.ppid) {
            self.proc(info.ppid)
        } else {
            None
        };
        match parent {
            Some(p) if p.exe.is_some() && p.exe == info.exe => ActorKey::Family(p.pid),
            _ => ActorKey::Process(info.pid),
        }
    }

    fn is_allowed(&mut self, info: &ProcInfo) -> bool {
        if self.cfg.allow.is_empty() {
            return false;
        }
        if let Some(&a) = self.allowed.get(&(info.pid, info.start)) {
            return a;
        }
        let Some(exe) = info.exe.clone() else {
            // Unknown (gone before any event showed it): not allowed, and
            // not remembered, so a later event can still tell.
            return false;
        };
        let allowed = self.cfg.allow.iter().any(|a| a.path == exe)
            && self.exe_hash(info.pid, &exe).is_some_and(|h| {
                self.cfg
                    .allow
                    .iter()
                    .any(|a| a.path == exe && a.sha256.eq_ignore_ascii_case(&h))
            });
        tracing::debug!(pid = info.pid, exe = ?info.exe, allowed, "allow-list checked");
        if self.allowed.len() > 4096 {
            self.allowed.clear();
        }
        self.allowed.insert((info.pid, info.start), allowed);
        allowed
    }

    /// SHA-256 of the running image (`/proc/PID/exe`, which names the file
    /// the process runs even if the path was replaced since), or of the
    /// file at `exe` once the process is gone; cached by inode and mtime.
    fn exe_hash(&mut self, pid: i32, exe: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let image = PathBuf::from(format!("/proc/{pid}/exe"));
        let src = if image.metadata().is_ok() {
            image
        } else {
            exe.to_path_buf()
        };
        let md = std::fs::metadata(&src).ok()?;
        let key = (md.dev(), md.ino(), md.mtime(), md.mtime_nsec(), md.len());
        if let Some(h) = self.hashes.get(&key) {
            return Some(h.clone());
        }
        let h = hex(&rxvault_crypto::sha256_file(&src).ok()?);
        if self.hashes.len() > 1024 {
            self.hashes.clear();
        }
        self.hashes.insert(key, h.clone());
        Some(h)
    }

    fn respond(&mut self, d: Detection) -> Result<(), AgentError> {
        self.stats.detections += 1;
        let signals = d
            .signals
            .iter()
            .map(|(s, n)| (s.name().to_string(), *n))
            .collect();
        if d.actor.is_some_and(|a| {
            self.responded
                .get(&a)
                .is_some_and(|&until| self.millis() < until)
        }) {
            return Ok(());
        }
        let Some(actor) = d.actor else {
            tracing::error!("a canary was touched by a process that could not be identified");
            let mut r = Report::alert(ReportKind::CanaryUnattributed, &self.host, self.now());
            r.signals = signals;
            r.score = d.score;
            self.reporter.report(&r)?;
            self.rescan();
            return Ok(());
        };
        // Stop first: the process that crossed the threshold and its group
        // at once, then whatever the /proc scan finds (children, group
        // members), which takes milliseconds.
        let pid = d.pid.unwrap_or(0);
        let group = match actor {
            ActorKey::Group(g) => Some(g),
            ActorKey::Process(_) | ActorKey::Family(_) => None,
        };
        let first = match actor {
            ActorKey::Family(p) => vec![p, pid],
            _ => vec![pid],
        };
        let mut stopped = platform::signal_all(&first, group, Signal::SIGSTOP);
        let mut pids = first;
        if let Some(g) = group {
            pids.extend(members_of_group(g));
        }
        for p in pids.clone() {
            pids.extend(platform::descendants(p));
        }
        pids.sort_unstable();
        pids.dedup();
        stopped += platform::signal_all(&pids, None, Signal::SIGSTOP);
        let pid = d.pid.unwrap_or(0);
        // The process that crossed the threshold may be a short-lived one
        // already gone (a worker, `rm`): then name the group's leader or
        // the family's parent.
        let leader = match actor {
            ActorKey::Group(p) | ActorKey::Family(p) | ActorKey::Process(p) => p,
        };
        let known = |a: &Self, p: i32| a.procs.get(&p).and_then(|i| i.exe.clone()).map(|e| (p, e));
        let (exe_pid, exe) = match known(self, pid).or_else(|| known(self, leader)) {
            Some((p, e)) => (p, Some(e)),
            None => (pid, None),
        };
        let exe_sha256 = exe.as_ref().and_then(|e| self.exe_hash(exe_pid, e));
        let action = if stopped == 0 {
            Action::StopFailed
        } else {
            match self.cfg.policy {
                Policy::Kill => Action::Killed,
                Policy::Resume => Action::Resumed,
                Policy::Stop => Action::Stopped,
            }
        };
        let r = Report {
            kind: ReportKind::Detection,
            host: self.host.clone(),
            process: exe
                .as_ref()
                .and_then(|e| e.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            pid: d.pid,
            exe: exe.as_ref().map(|e| e.display().to_string()),
            exe_sha256,
            score: d.score,
            signals,
            files_touched: d.files_touched,
            processes_stopped: pids.len() as u32,
            action,
            at: self.now(),
        };
        tracing::error!(
            pid,
            exe = r.exe.as_deref().unwrap_or("?"),
            score = d.score,
            signals = ?r.signals,
            files_touched = d.files_touched,
            processes = pids.len(),
            "ransomware behaviour: process stopped"
        );
        // Report while it is stopped, then apply the policy.
        let reported = self.reporter.report(&r);
        match self.cfg.policy {
            Policy::Kill => platform::signal_all(&pids, group, Signal::SIGKILL),
            Policy::Resume => platform::signal_all(&pids, group, Signal::SIGCONT),
            Policy::Stop => 0,
        };
        self.engine.forget(actor);
        let quiet = match self.cfg.policy {
            Policy::Kill => 60_000,
            Policy::Resume => 2_000,
            Policy::Stop => 60_000,
        };
        let now = self.millis();
        self.responded.retain(|_, until| *until > now);
        self.responded.insert(actor, now + quiet);
        // Put back any canary it damaged.
        self.rescan();
        reported?;
        Ok(())
    }
}

fn members_of_group(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(platform::proc_info)
        .filter(|i| i.pgid == pgid)
        .map(|i| i.pid)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The machine's host name (`/proc/sys/kernel/hostname`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}
