//! Linux: fanotify (as root) for opens, writes and closes with the pid;
//! inotify (through `notify`) for creates, renames and deletes, which
//! fanotify reports with names only through FID records that nix does not
//! parse. `/proc` for process facts; signals through nix.
//!
//! Overflow is never silent: fanotify's `FAN_Q_OVERFLOW` and inotify's
//! `IN_Q_OVERFLOW` (notify's `Rescan` flag) both become
//! [`RawEvent::Overflow`], on which the agent rescans and reports; a watch
//! that cannot be added (the inotify watch limit, `max_user_watches`)
//! becomes [`RawEvent::WatchFailed`] naming the limit.

use super::{ProcessEventKind, RawEvent};
use crate::content::{BLOCK, Fingerprint, sample_offsets};
use crossbeam_channel::Sender;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Facts about a process from `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: i32,
    /// Its parent.
    pub ppid: i32,
    /// Its process group.
    pub pgid: i32,
    /// Its session.
    pub sid: i32,
    /// Start time (clock ticks since boot): with the pid, identifies it.
    pub start: u64,
    /// The executable (`/proc/PID/exe`).
    pub exe: Option<PathBuf>,
}

/// Reads `/proc/PID/stat` and `/proc/PID/exe` (None once the process is
/// gone).
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields after the name: state(0) ppid(1) pgrp(2) session(3) ... starttime(19).
    Some(ProcInfo {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        pgid: f.get(2)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
        exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok(),
    })
}

/// Every descendant of `pid` (children, their children...), from `/proc`.
pub fn descendants(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<ProcInfo> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_info)
        .collect();
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in all.iter().filter(|i| i.ppid == p) {
            if !out.contains(&c.pid) {
                out.push(c.pid);
                todo.push(c.pid);
            }
        }
    }
    out
}

/// Sends `signal` to each pid, and to the process group `group` when given
/// (never to the agent's own group, pid 1 or pid 0). Returns how many
/// deliveries succeeded.
pub fn signal_all(pids: &[i32], group: Option<i32>, signal: Signal) -> usize {
    let own_pid = std::process::id() as i32;
    let own_group = nix::unistd::getpgrp().as_raw();
    let mut ok = 0;
    if let Some(g) = group
        && g > 1
        && g != own_group
        && nix::sys::signal::killpg(Pid::from_raw(g), signal).is_ok()
    {
        ok += 1;
    }
    for &p in pids {
        if p > 1 && p != own_pid && kill(Pid::from_raw(p), signal).is_ok() {
            ok += 1;
        }
    }
    ok
}

/// The running watchers: a fanotify group (marks on every watched folder)
/// and a recursive inotify watcher, both feeding one channel.
pub struct Watcher {
    fan: Arc<Fanotify>,
    _inotify: notify::RecommendedWatcher,
    roots: Vec<PathBuf>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("roots", &self.roots)
            .finish()
    }
}

/// Errors starting the watchers.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// fanotify could not be set up (it needs root: CAP_SYS_ADMIN).
    #[error("fanotify: {0} (the agent must run as root)")]
    Fanotify(nix::Error),
    /// inotify could not be set up.
    #[error("inotify: {0}")]
    Inotify(notify::Error),
}

/// What folders are marked for. Not `FAN_MODIFY`: one event per write
/// call costs the writer (and the agent) for nothing the close does not
/// tell; only canaries are marked for it ([`Watcher::mark_canary`]), where
/// a write must be caught before the close.
const FAN_MASK: MaskFlags = MaskFlags::FAN_OPEN
    .union(MaskFlags::FAN_CLOSE_WRITE)
    .union(MaskFlags::FAN_CLOSE_NOWRITE)
    .union(MaskFlags::FAN_EVENT_ON_CHILD)
    .union(MaskFlags::FAN_ONDIR);

impl Watcher {
    /// Starts watching `roots` (recursively), sending events to `tx`.
    /// Folders that cannot be watched are reported on `tx` as
    /// [`RawEvent::WatchFailed`], not as an error: the agent watches what it
    /// can and says what it cannot.
    ///
    /// `executables` (the allow-listed ones) are marked for `FAN_OPEN_EXEC`:
    /// the kernel reports each exec of one before the new program does any
    /// I/O, so even a process that is gone by the time its writes are scored
    /// is known by its executable.
    pub fn start(
        roots: &[PathBuf],
        executables: &[PathBuf],
        tx: Sender<RawEvent>,
    ) -> Result<Self, WatchError> {
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_UNLIMITED_MARKS,
            EventFFlags::O_RDONLY
                | EventFFlags::O_LARGEFILE
                | EventFFlags::O_CLOEXEC
                | EventFFlags::O_NOATIME,
        )
        .map_err(WatchError::Fanotify)?;
        let fan = Arc::new(fan);
        let txi = tx.clone();
        let mut inotify = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            for ev in translate(res) {
                let _ = txi.send(ev);
            }
        })
        .map_err(WatchError::Inotify)?;
        let watcher = Watcher {
            fan: fan.clone(),
            _inotify: {
                for root in roots {
                    if let Err(e) = inotify.watch(root, RecursiveMode::Recursive) {
                        let _ = tx.send(RawEvent::WatchFailed(describe_notify_error(root, &e)));
                    }
                }
                inotify
            },
            roots: roots.to_vec(),
        };
        for root in roots {
            for dir in walk_dirs(root) {
                if let Err(e) = watcher.mark(&dir) {
                    let _ = tx.send(RawEvent::WatchFailed(format!(
                        "fanotify mark on {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
        for exe in executables {
            let marked = fan.mark(
                MarkFlags::FAN_MARK_ADD,
                MaskFlags::FAN_OPEN_EXEC,
                nix::fcntl::AT_FDCWD,
                Some(exe.as_path()),
            );
            if let Err(e) = marked {
                let _ = tx.send(RawEvent::WatchFailed(format!(
                    "fanotify exec mark on {}: {e}",
                    exe.display()
                )));
            }
        }
        let roots_owned = roots.to_vec();
        std::thread::Builder::new()
            .name("fanotify".into())
            .spawn(move || read_loop(&fan, &roots_owned, &tx))
            .expect("spawn the fanotify reader");
        Ok(watcher)
    }

    /// Marks one more folder (a new one inotify reported).
    pub fn mark(&self, dir: &Path) -> nix::Result<()> {
        self.fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_ONLYDIR,
            FAN_MASK,
            nix::fcntl::AT_FDCWD,
            Some(dir),
        )
    }

    /// Marks a canary file for `FAN_MODIFY` (its first write, not its close).
    pub fn mark_canary(&self, file: &Path) -> nix::Result<()> {
        self.fan.mark(
            MarkFlags::FAN_MARK_ADD,
            MaskFlags::FAN_MODIFY,
            nix::fcntl::AT_FDCWD,
            Some(file),
        )
    }

    /// The watched folders.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }
}

/// Every folder under `root` (itself included), hidden ones too.
pub fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.filter_map(Result::ok) {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
        out.push(d);
    }
    out
}

fn describe_notify_error(root: &Path, e: &notify::Error) -> String {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => format!(
            "inotify watch limit reached under {}: renames and deletes there are not seen; raise fs.inotify.max_user_watches",
            root.display()
        ),
        _ => format!("inotify watch on {}: {e}", root.display()),
    }
}

fn translate(res: notify::Result<notify::Event>) -> Vec<RawEvent> {
    let ev = match res {
        Ok(ev) => ev,
        Err(e) => {
            let root = e.paths.first().cloned().unwrap_or_default();
            return vec![RawEvent::WatchFailed(describe_notify_error(&root, &e))];
        }
    };
    if ev.need_rescan() {
        return vec![RawEvent::Overflow("inotify")];
    }
    let first = ev.paths.first().cloned();
    match (ev.kind, first) {
        (EventKind::Create(k), Some(p)) => {
            let is_dir = matches!(k, notify::event::CreateKind::Folder) || p.is_dir();
            vec![RawEvent::Created(p, is_dir)]
        }
        (EventKind::Remove(_), Some(p)) => vec![RawEvent::Deleted(p)],
        (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), Some(from)) => {
            match ev.paths.get(1) {
                Some(to) => vec![RawEvent::Renamed(from, to.clone())],
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// Process facts as early as possible: read when the event is read (a
/// short-lived process may be gone by the time the agent scores it), and
/// kept per pid so that a process that has exited (or is a zombie, whose
/// `/proc/PID/exe` is unreadable) keeps the executable its first event saw.
///
/// A pid looked up within the last [`FRESH`] is not read again: a burst of
/// events from one process costs one `/proc` read, not one per event.
#[derive(Default)]
/// (An allow-listed program's process, known from its exec, is always
/// read again: what it runs next must never inherit its exemption.)
struct ProcCache(std::collections::HashMap<i32, (ProcInfo, Option<std::time::Instant>)>);

const FRESH: std::time::Duration = std::time::Duration::from_millis(50);

impl ProcCache {
    /// `pid` is executing `exe` (`/proc/PID/exe` may still name the old
    /// program at this point).
    fn exec(&mut self, pid: i32, exe: PathBuf) {
        if let Some(mut info) = proc_info(pid) {
            info.exe = Some(exe);
            self.0.insert(pid, (info, None));
        }
    }

    fn get(&mut self, pid: i32) -> Option<ProcInfo> {
        if let Some((info, Some(at))) = self.0.get(&pid)
            && at.elapsed() < FRESH
        {
            return Some(info.clone());
        }
        let fresh = proc_info(pid);
        let known = self.0.get(&pid).map(|(i, _)| i);
        let info = match (fresh, known) {
            (Some(mut f), Some(k)) if f.start == k.start => {
                // Gone (a zombie's exe is unreadable): the cache knows
                // what it ran. A readable exe always wins (a later exec of
                // an unmarked program must not keep an allow-listed name).
                if f.exe.is_none() {
                    f.exe = k.exe.clone();
                }
                f
            }
            (Some(f), _) => f,
            (None, Some(k)) => return Some(k.clone()),
            (None, None) => return None,
        };
        if self.0.len() > 8192 {
            self.0.clear();
        }
        let exec_known = self
            .0
            .get(&pid)
            .is_some_and(|(k, at)| at.is_none() && k.start == info.start);
        let stamp = (!exec_known).then(std::time::Instant::now);
        self.0.insert(pid, (info.clone(), stamp));
        Some(info)
    }
}

fn read_loop(fan: &Fanotify, roots: &[PathBuf], tx: &Sender<RawEvent>) {
    let own = std::process::id() as i32;
    let mut procs = ProcCache::default();
    loop {
        let events = match fan.read_events() {
            Ok(ev) => ev,
            Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => continue,
            Err(e) => {
                let _ = tx.send(RawEvent::WatchFailed(format!("fanotify read: {e}")));
                return;
            }
        };
        for ev in events {
            let mask = ev.mask();
            if mask.contains(MaskFlags::FAN_Q_OVERFLOW) {
                if tx.send(RawEvent::Overflow("fanotify")).is_err() {
                    return;
                }
                continue;
            }
            let Some(fd) = ev.fd() else { continue };
            if ev.pid() == own {
                continue;
            }
            let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
                continue;
            };
            if mask.contains(MaskFlags::FAN_OPEN_EXEC) {
                procs.exec(ev.pid(), path);
                continue;
            }
            if !roots.iter().any(|r| path.starts_with(r)) {
                continue;
            }
            let is_dir = mask.contains(MaskFlags::FAN_ONDIR);
            // One event may carry several kinds (the kernel merges them);
            // report the most telling.
            let kind = if mask.contains(MaskFlags::FAN_CLOSE_WRITE) {
                ProcessEventKind::CloseWrite
            } else if mask.contains(MaskFlags::FAN_MODIFY) {
                ProcessEventKind::Modify
            } else if mask.contains(MaskFlags::FAN_CLOSE_NOWRITE) {
                ProcessEventKind::CloseRead
            } else {
                ProcessEventKind::Open
            };
            let fingerprint = match kind {
                ProcessEventKind::CloseWrite | ProcessEventKind::CloseRead if !is_dir => sample(fd),
                _ => None,
            };
            let sent = tx.send(RawEvent::Process {
                pid: ev.pid(),
                proc: procs.get(ev.pid()),
                path,
                kind,
                is_dir,
                fingerprint,
            });
            if sent.is_err() {
                return;
            }
        }
    }
}

/// Fingerprints an open file from its sampled blocks (at most
/// [`crate::content::SAMPLE_BLOCKS`] × 4 KiB read).
pub fn sample(fd: BorrowedFd<'_>) -> Option<Fingerprint> {
    let st = nix::sys::stat::fstat(fd.as_fd()).ok()?;
    if (st.st_mode & nix::libc::S_IFMT) != nix::libc::S_IFREG {
        return None;
    }
    let len = u64::try_from(st.st_size).ok()?;
    let mut blocks = Vec::new();
    for off in sample_offsets(len) {
        let mut buf = vec![0u8; BLOCK];
        let n = nix::sys::uio::pread(fd, &mut buf, i64::try_from(off).ok()?).ok()?;
        buf.truncate(n);
        blocks.push(buf);
    }
    Some(Fingerprint::of_sample(len, &blocks))
}

/// Fingerprints a file by path (the initial scan).
pub fn sample_path(path: &Path) -> Option<Fingerprint> {
    let f = std::fs::File::open(path).ok()?;
    sample(f.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_info_reads_this_process() {
        let me = proc_info(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.pgid, nix::unistd::getpgrp().as_raw());
        assert!(me.exe.is_some());
        assert!(proc_info(i32::MAX).is_none());
    }

    #[test]
    fn never_signals_init_itself_or_its_own_group() {
        let own = std::process::id() as i32;
        let group = nix::unistd::getpgrp().as_raw();
        // SIGCONT is harmless if the guard were wrong; the count shows it held.
        assert_eq!(
            signal_all(&[own, 1, 0, -1], Some(group), Signal::SIGCONT),
            0
        );
        assert_eq!(signal_all(&[], Some(1), Signal::SIGCONT), 0);
    }

    #[test]
    fn descendants_finds_children_and_grandchildren() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let t = std::time::Instant::now();
        while descendants(pid).len() < 2 && t.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let d = descendants(pid);
        assert_eq!(d.len(), 2, "{d:?}");
        for p in d {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
