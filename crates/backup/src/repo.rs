//! restic repositories, through rustic_core: the one module that knows its
//! API (it changes between versions; nothing else in rxvault names it).
//!
//! A repository is opened with a password (restic's key files), so the
//! standard `restic` tool reads, checks and restores what rxvault wrote.
//! Targets: a local folder (rustic_backend's local backend) or a
//! [`Transport`] given by the caller, such as the restic REST protocol of
//! `rest-server --append-only` or `rclone serve restic --append-only` (the
//! binary implements it: only it and the server speak HTTP).
//!
//! **Invariant:** nothing here deletes. Backing up writes new packs, index
//! files and a snapshot file; verifying and restoring only read. No lock
//! files are written (rustic is lock-free), so an append-only target that
//! refuses every delete and overwrite serves all of it.

use crate::{Error, Result};
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, BytesList, CheckOptions, ConfigOptions, Credentials, FileType, Id, KeyOptions,
    LocalDestination, LsOptions, PathList, ReadBackend, Repository, RepositoryBackends,
    RepositoryOptions, RestoreOptions, RusticError, RusticResult, SnapshotOptions, WriteBackend,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The path a vault's files have inside every snapshot (what `restic
/// restore --target T` puts under `T/rxvault`).
pub const SNAPSHOT_PATH: &str = "/rxvault";

/// Object-level access to a repository somewhere else (the restic REST
/// protocol). Paths are `config`, or `<dir>/<name>` with `dir` one of
/// `keys`, `snapshots`, `index`, `data`.
pub trait Transport: Send + Sync + 'static {
    /// Where it is, for messages (no credentials).
    fn location(&self) -> String;
    /// Creates the repository's structure (REST: `POST /?create=true`).
    fn create(&self) -> std::io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &str) -> std::io::Result<bool>;
    /// The names and sizes of the files in `dir`.
    fn list(&self, dir: &str) -> std::io::Result<Vec<(String, u64)>>;
    /// The file at `path`, or `len` bytes of it from `offset`.
    fn read(&self, path: &str, range: Option<(u64, u32)>) -> std::io::Result<Vec<u8>>;
    /// Writes a new file (an append-only target refuses an existing one).
    fn write(&self, path: &str, data: Vec<u8>) -> std::io::Result<()>;
    /// Deletes a file (an append-only target refuses). rxvault's backup path
    /// never calls it; it is here because the repository format allows it.
    fn remove(&self, path: &str) -> std::io::Result<()>;
}

/// Where a repository is.
#[derive(Clone)]
pub enum Location {
    /// A local folder.
    Local(PathBuf),
    /// Somewhere a [`Transport`] reaches.
    Remote(Arc<dyn Transport>),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Location {
    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Remote(t) => t.location(),
        }
    }
}

/// A snapshot, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its id (64 hex digits; restic shows the first 8).
    pub id: String,
    /// When it was taken (Unix seconds).
    pub time: i64,
    /// The host that took it.
    pub hostname: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Bytes of the files it holds.
    pub bytes: u64,
    /// Bytes it added to the repository (after deduplication and
    /// compression), if recorded.
    pub added: Option<u64>,
}

/// What a full check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Errors (a damaged or missing pack, index or tree).
    pub errors: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
}

fn rustic(what: &str, location: &str) -> impl FnOnce(Box<RusticError>) -> Error {
    let what = format!("{what} ({location})");
    move |e| Error::Repository {
        what,
        message: brief(&e),
    }
}

/// rustic's message without its backtraces and boilerplate: what failed
/// and why, on one line.
fn brief(e: &RusticError) -> String {
    brief_text(&e.to_string())
}

fn brief_text(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for chunk in text.split("Backtrace:") {
        for line in chunk.lines().map(str::trim) {
            let noise = line.is_empty()
                || line.starts_with("at ")
                || line.chars().next().is_some_and(|c| c.is_ascii_digit())
                || line.starts_with("Some additional details")
                || line.starts_with("For more information")
                || line.starts_with("Caused by")
                || line.starts_with("Message:")
                || line.starts_with("Context:")
                || line.starts_with("- nonce")
                || line.starts_with("disabled backtrace")
                || line.starts_with(": (source");
            if !noise && !parts.contains(&line) {
                parts.push(line);
            }
        }
    }
    parts.join("; ")
}

/// An open repository.
pub struct Repo {
    repo: Repository<rustic_core::OpenStatus>,
    location: String,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Repo {
    /// Opens the repository at `location` with `password`; with `create`,
    /// initialises it first if it has no config yet (restic format version
    /// 2: compressed).
    pub fn open(location: &Location, password: &str, create: bool) -> Result<Repo> {
        let describe = location.describe();
        let backend: Arc<dyn WriteBackend> = match location {
            Location::Local(path) => {
                let path = path.to_str().ok_or_else(|| {
                    Error::Invalid(format!("{}: not a UTF-8 path", path.display()))
                })?;
                Arc::new(
                    rustic_backend::local::LocalBackend::new(path, Vec::new())
                        .map_err(rustic("opening the repository", &describe))?,
                )
            }
            Location::Remote(t) => Arc::new(Remote(t.clone())),
        };
        let backends = RepositoryBackends::new(backend, None);
        // No cache: every read goes to the repository (a verify must not
        // trust a local copy), and nothing about it is kept on this host.
        let options = RepositoryOptions::default().no_cache(true);
        let credentials = Credentials::password(password);
        let repo = Repository::new(&options, &backends)
            .map_err(rustic("opening the repository", &describe))?;
        let exists = repo
            .config_id()
            .map_err(rustic("reading the repository", &describe))?
            .is_some();
        let repo = if exists {
            repo.open(&credentials).map_err(|e| {
                let message = brief(&e);
                if message.to_lowercase().contains("password") || message.contains("key") {
                    Error::WrongPassword(describe.clone())
                } else {
                    Error::Repository {
                        what: format!("opening the repository ({describe})"),
                        message,
                    }
                }
            })?
        } else if create {
            repo.init(
                &credentials,
                &KeyOptions::default(),
                &ConfigOptions::default(),
            )
            .map_err(rustic("creating the repository", &describe))?
        } else {
            return Err(Error::NoRepository(describe));
        };
        Ok(Repo {
            repo,
            location: describe,
        })
    }

    /// Where it is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let mut snaps = self
            .repo
            .get_all_snapshots()
            .map_err(rustic("listing snapshots", &self.location))?;
        snaps.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(snaps.iter().map(info).collect())
    }

    /// Backs up folder `dir` as one snapshot (its files appear under
    /// [`SNAPSHOT_PATH`]) taken at `time` (Unix seconds), tagged.
    pub fn backup(self, dir: &Path, time: i64, tags: &[String]) -> Result<SnapshotInfo> {
        let loc = &self.location.clone();
        let dir = dir
            .to_str()
            .ok_or_else(|| Error::Invalid(format!("{}: not a UTF-8 path", dir.display())))?;
        let mut snap = SnapshotOptions::default();
        for t in tags {
            snap = snap
                .add_tags(t)
                .map_err(rustic("tagging the snapshot", loc))?;
        }
        let zoned = rustic_core::jiff::Timestamp::from_second(time)
            .map_err(|e| Error::Invalid(format!("snapshot time: {e}")))?
            .to_zoned(rustic_core::jiff::tz::TimeZone::UTC);
        let snap = snap
            .time(zoned)
            .to_snapshot()
            .map_err(rustic("preparing the snapshot", loc))?;
        let source = PathList::from_string(dir)
            .map_err(|e| Error::Invalid(format!("{dir}: {e}")))?
            .sanitize()
            .map_err(|e| Error::Invalid(format!("{dir}: {e}")))?;
        let options = BackupOptions::default().as_path(PathBuf::from(SNAPSHOT_PATH));
        let repo = self
            .repo
            .to_indexed_ids()
            .map_err(rustic("reading the index", loc))?;
        let snap = repo
            .backup(&options, &source, snap)
            .map_err(rustic("backing up", loc))?;
        Ok(info(&snap))
    }

    /// Reads everything back (`restic check --read-data`): every pack's
    /// every blob is downloaded, decrypted and hashed; every index, tree
    /// and snapshot is checked.
    pub fn check(&self) -> Result<CheckReport> {
        let results = self
            .repo
            .check(CheckOptions::default().read_data(true))
            .map_err(rustic("checking", &self.location))?;
        let mut report = CheckReport::default();
        for (level, err) in results.0 {
            // The level's type is not exported: its name says it.
            if format!("{level:?}") == "Error" {
                report.errors.push(brief_text(&err.to_string()));
            } else {
                report.warnings.push(brief_text(&err.to_string()));
            }
        }
        Ok(report)
    }

    /// The snapshot `id` (a unique prefix, or `latest`).
    pub fn snapshot(&self, id: &str) -> Result<SnapshotInfo> {
        Ok(info(&self.find(id)?))
    }

    fn find(&self, id: &str) -> Result<SnapshotFile> {
        let loc = &self.location;
        if id == "latest" {
            let mut snaps = self
                .repo
                .get_all_snapshots()
                .map_err(rustic("listing snapshots", loc))?;
            snaps.sort_by(|a, b| a.time.cmp(&b.time));
            return snaps
                .pop()
                .ok_or_else(|| Error::NoSnapshot(format!("the repository {loc} has no snapshot")));
        }
        self.repo
            .get_snapshot_from_str(id, |_| true)
            .map_err(|e| Error::NoSnapshot(format!("snapshot {id:?} in {loc}: {e}")))
    }

    /// Restores the vault's files of snapshot `id` into folder `to` (new
    /// or empty). Every blob is authenticated as it is decrypted; a damaged
    /// pack fails the restore.
    pub fn restore(self, id: &str, to: &Path) -> Result<SnapshotInfo> {
        let loc = &self.location.clone();
        let snap = self.find(id)?;
        let repo = self
            .repo
            .to_indexed()
            .map_err(rustic("reading the index", loc))?;
        let node = repo
            .node_from_snapshot_and_path(&snap, SNAPSHOT_PATH)
            .map_err(rustic("finding the vault in the snapshot", loc))?;
        let ls = repo
            .ls(&node, &LsOptions::default())
            .map_err(rustic("listing the snapshot", loc))?;
        let mut dest = to
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Invalid(format!("{}: not a UTF-8 path", to.display())))?;
        if !dest.ends_with('/') {
            dest.push('/');
        }
        let dest = LocalDestination::new(&dest, true, false)
            .map_err(rustic("preparing the restore folder", loc))?;
        let options = RestoreOptions::default();
        let plan = repo
            .prepare_restore(&options, ls.clone(), &dest, false)
            .map_err(rustic("planning the restore", loc))?;
        repo.restore(plan, &options, ls, &dest)
            .map_err(rustic("restoring", loc))?;
        Ok(info(&snap))
    }
}

fn info(s: &SnapshotFile) -> SnapshotInfo {
    SnapshotInfo {
        id: s.id.to_hex().as_str().to_string(),
        time: s.time.timestamp().as_second(),
        hostname: s.hostname.clone(),
        tags: s.tags.iter().map(ToString::to_string).collect(),
        bytes: s
            .summary
            .as_ref()
            .map_or(0, |sum| sum.total_bytes_processed),
        added: s.summary.as_ref().map(|sum| sum.data_added),
    }
}

/// A [`Transport`] as rustic's backend.
struct Remote(Arc<dyn Transport>);

fn remote_err(what: &'static str, path: &str, e: std::io::Error) -> Box<RusticError> {
    RusticError::with_source(rustic_core::ErrorKind::Backend, "{what} `{path}` failed", e)
        .attach_context("what", what)
        .attach_context("path", path.to_string())
}

fn path_of(tpe: FileType, id: &Id) -> String {
    match tpe {
        FileType::Config => "config".into(),
        // In full: `Id`'s `Display` shows only the first 8 hex digits.
        _ => format!("{}/{}", tpe.dirname(), id.to_hex().as_str()),
    }
}

impl ReadBackend for Remote {
    fn location(&self) -> String {
        self.0.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let found = self
                .0
                .exists("config")
                .map_err(|e| remote_err("checking", "config", e))?;
            return Ok(if found {
                vec![(Id::default(), 0)]
            } else {
                Vec::new()
            });
        }
        let dir = tpe.dirname();
        let list = self
            .0
            .list(dir)
            .map_err(|e| remote_err("listing", dir, e))?;
        Ok(list
            .into_iter()
            .filter_map(|(name, size)| Some((name.parse::<Id>().ok()?, u32::try_from(size).ok()?)))
            .collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<bytes::Bytes> {
        let path = path_of(tpe, id);
        self.0
            .read(&path, None)
            .map(Into::into)
            .map_err(|e| remote_err("reading", &path, e))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<bytes::Bytes> {
        let path = path_of(tpe, id);
        self.0
            .read(&path, Some((u64::from(offset), length)))
            .map(Into::into)
            .map_err(|e| remote_err("reading", &path, e))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        path_of(tpe, id)
    }
}

impl WriteBackend for Remote {
    fn create(&self) -> RusticResult<()> {
        self.0.create().map_err(|e| remote_err("creating", "/", e))
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = path_of(tpe, id);
        let mut data = Vec::with_capacity(content.size());
        for b in content.slice() {
            data.extend_from_slice(b);
        }
        self.0
            .write(&path, data)
            .map_err(|e| remote_err("writing", &path, e))
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let path = path_of(tpe, id);
        self.0
            .remove(&path)
            .map_err(|e| remote_err("deleting", &path, e))
    }
}
