//! The data directory and its configuration file.
//!
//! ```text
//! DIR/
//!   rxvault.toml      vault id, store backend, key kind (no secrets)
//!   vault.db          the SQLite store (embedded backend), with -wal/-shm
//! ```
//! The key file is **not** here: by default it lives under the user's
//! configuration directory (`~/.config/rxvault/keys/<vault id>.key`), so a
//! copy of the data directory (a stolen disk image, a backup) does not carry
//! the key. `rxvault.toml` is a convenience, not a trust anchor: whatever it
//! says, the vault opens only with the right key.

use crate::{Error, Result, io_err};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The configuration file's name.
pub const CONFIG_FILE: &str = "rxvault.toml";
/// The SQLite database's name.
pub const SQLITE_FILE: &str = "vault.db";

/// Where the records are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StoreConfig {
    /// Embedded SQLite in the data directory.
    Sqlite,
    /// PostgreSQL. `url` may be overridden by `RXVAULT_PG_URL` (so a
    /// password need not be written here).
    Postgres {
        /// Connection URL.
        url: String,
        /// Schema holding the vault's tables.
        schema: String,
    },
}

/// The PostgreSQL URL to connect with: `RXVAULT_PG_URL` if set (so a
/// password need not be written in `rxvault.toml`), else the recorded one.
pub(crate) fn pg_url(recorded: &str) -> String {
    std::env::var("RXVAULT_PG_URL").unwrap_or_else(|_| recorded.to_string())
}

/// How the KEK is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// A key file.
    File,
    /// A passphrase (Argon2id).
    Passphrase,
}

/// The contents of `rxvault.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    /// The vault's random id.
    pub vault_id: String,
    /// Where records are stored.
    pub store: StoreConfig,
    /// How the KEK is obtained.
    pub key: KeyKind,
    /// The key file chosen at init, if not the default location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The pharmacy's time zone (an IANA name such as `America/Chicago`):
    /// what "today" means (the day's shipments). Set at init from the
    /// system's (`TZ`, else `/etc/localtime`); absent in vaults made before
    /// it was recorded, which use UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The data directory (not stored; set when loaded).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl VaultConfig {
    /// Loads `DIR/rxvault.toml`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialized(dir.display().to_string()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut config: VaultConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.dir = dir.to_path_buf();
        Ok(config)
    }

    /// Writes `DIR/rxvault.toml` atomically.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(CONFIG_FILE);
        let mut text = String::from(
            "# rxvault vault configuration. No secrets here: the key lives outside this directory.\n",
        );
        text.push_str(&toml::to_string_pretty(self).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        })?);
        write_atomic(&path, text.as_bytes(), 0o600)
    }

    /// The time zone named in the configuration (UTC if none).
    pub fn zone(&self) -> Result<jiff::tz::TimeZone> {
        match &self.time_zone {
            None => Ok(jiff::tz::TimeZone::UTC),
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| Error::Config {
                path: self.dir.join(CONFIG_FILE),
                message: format!("time_zone {name:?} is not a known time zone ({e})"),
            }),
        }
    }

    /// The SQLite file of an embedded vault.
    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.join(SQLITE_FILE)
    }

    /// Where the vault's audit log is stored: `DIR/audit.db`, or the
    /// `audit_*` tables of its PostgreSQL schema (`RXVAULT_PG_URL`
    /// overriding the recorded URL, as for the vault).
    pub fn audit_location(&self) -> rxvault_audit::StoreLocation {
        match &self.store {
            StoreConfig::Sqlite => rxvault_audit::StoreLocation::Sqlite {
                dir: self.dir.clone(),
            },
            StoreConfig::Postgres { url, schema } => rxvault_audit::StoreLocation::Postgres {
                url: pg_url(url),
                schema: schema.clone(),
            },
        }
    }

    /// The key file to use when none is given: the one chosen at init, else
    /// the default location for this vault.
    pub fn key_file(&self) -> Result<PathBuf> {
        match &self.key_file {
            Some(p) => Ok(p.clone()),
            None => default_key_file(&self.vault_id),
        }
    }
}

/// The default key file of a vault: `<config dir>/rxvault/keys/<id>.key`
/// (`$XDG_CONFIG_HOME`, else `~/.config`). `RXVAULT_KEY_DIR` overrides the
/// folder.
pub fn default_key_file(vault_id: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("RXVAULT_KEY_DIR") {
        Some(d) => PathBuf::from(d),
        None => dirs::config_dir()
            .ok_or_else(|| {
                Error::Key(
                    "no configuration directory for the key file (HOME is not set): pass --key-file PATH"
                        .into(),
                )
            })?
            .join("rxvault")
            .join("keys"),
    };
    Ok(dir.join(format!("{vault_id}.key")))
}

/// Writes a file atomically: temporary file in the same folder, fsync,
/// rename, fsync of the folder.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

/// Whether `inner` is `outer` or inside it (after resolving symlinks of the
/// longest existing prefixes).
pub fn is_inside(inner: &Path, outer: &Path) -> bool {
    fn resolve(p: &Path) -> PathBuf {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Lexically first (`a/../b` is `b`), then symlinks of the longest
        // existing prefix.
        let mut lexical = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    lexical.pop();
                }
                std::path::Component::CurDir => {}
                c => lexical.push(c),
            }
        }
        let mut existing = lexical.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut out = existing.canonicalize().unwrap_or(existing);
        out.extend(rest.into_iter().rev());
        out
    }
    resolve(inner).starts_with(resolve(outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = VaultConfig {
            vault_id: "abc".into(),
            store: StoreConfig::Postgres {
                url: "postgres://x@h/db".into(),
                schema: "rxvault".into(),
            },
            key: KeyKind::Passphrase,
            key_file: None,
            time_zone: Some("America/Chicago".into()),
            dir: dir.path().to_path_buf(),
        };
        c.save().unwrap();
        assert_eq!(VaultConfig::load(dir.path()).unwrap(), c);
        let missing = VaultConfig::load(&dir.path().join("x")).unwrap_err();
        assert!(missing.to_string().contains("rxvault init"), "{missing}");
    }

    #[test]
    fn inside_checks_resolve_relative_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_inside(&dir.path().join("a/b.key"), dir.path()));
        assert!(is_inside(&dir.path().join("a/../b.key"), dir.path()));
        assert!(!is_inside(&dir.path().join("../elsewhere.key"), dir.path()));
        assert!(!is_inside(&dir.path().join("a/../../x.key"), dir.path()));
    }
}
