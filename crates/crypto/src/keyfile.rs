//! The key file: where a vault's KEK lives when it is not derived from a
//! passphrase.
//!
//! ```text
//! # rxvault key file. Keep it secret, and away from the vault's data directory and backups.
//! rxvault-keyfile v1
//! vault 5d0c2f0e8a4b4c1f9e3a7b6d2c1e0f9a
//! kek 1 <32 bytes, base64>
//! ```
//! A file holds one vault's KEK versions; during a rotation it holds the old
//! and the new one. It is written atomically with mode 0600, and refused
//! when other users can read it.

use crate::secret::SecretKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const HEADER: &str = "rxvault-keyfile v1";

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A syntax error (the message never quotes key material).
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Other users may read the file.
    #[error("key file {path} is accessible by other users (mode {mode:o}); run: chmod 600 {path}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

/// A parsed key file.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// The vault these keys belong to.
    pub vault_id: String,
    keys: Vec<(u32, SecretKey)>,
}

impl KeyFile {
    /// A key file for `vault_id` with one KEK.
    pub fn new(vault_id: &str, version: u32, key: SecretKey) -> Self {
        Self {
            vault_id: vault_id.to_string(),
            keys: vec![(version, key)],
        }
    }

    /// The KEK of `version`.
    pub fn get(&self, version: u32) -> Option<&SecretKey> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
    }

    /// The versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.keys.iter().map(|(v, _)| *v).collect();
        v.sort_unstable();
        v
    }

    /// Adds (or replaces) a version.
    pub fn insert(&mut self, version: u32, key: SecretKey) {
        self.keys.retain(|(v, _)| *v != version);
        self.keys.push((version, key));
    }

    /// Keeps only `version`.
    pub fn retain_only(&mut self, version: u32) {
        self.keys.retain(|(v, _)| *v == version);
    }

    /// Parses a key file's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Self, KeyFileError> {
        let err = |line: usize, message: &str| KeyFileError::Syntax {
            path: path.to_string(),
            line,
            message: message.to_string(),
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, HEADER)) => {}
            Some((n, _)) => {
                return Err(err(
                    n,
                    "not an rxvault key file (expected `rxvault-keyfile v1`)",
                ));
            }
            None => return Err(err(1, "empty key file")),
        }
        let mut vault_id = None;
        let mut keys: Vec<(u32, SecretKey)> = Vec::new();
        for (n, line) in lines {
            let mut words = line.split_ascii_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("vault"), Some(id), None, None) => {
                    if vault_id.replace(id.to_string()).is_some() {
                        return Err(err(n, "more than one `vault` line"));
                    }
                }
                (Some("kek"), Some(version), Some(key), None) => {
                    let version: u32 = version
                        .parse()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| err(n, "KEK version must be a positive integer"))?;
                    let bytes = Zeroizing::new(
                        B64.decode(key.trim_end_matches('='))
                            .map_err(|_| err(n, "KEK is not valid base64"))?,
                    );
                    let bytes: [u8; 32] = bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| err(n, "KEK must be 32 bytes"))?;
                    if keys.iter().any(|(v, _)| *v == version) {
                        return Err(err(n, "KEK version listed twice"));
                    }
                    keys.push((version, SecretKey::from_bytes(bytes)));
                }
                _ => {
                    return Err(err(
                        n,
                        "expected `vault <id>` or `kek <version> <base64 key>`",
                    ));
                }
            }
        }
        let vault_id = vault_id.ok_or_else(|| err(1, "no `vault` line"))?;
        if keys.is_empty() {
            return Err(err(1, "no `kek` line"));
        }
        Ok(Self { vault_id, keys })
    }

    /// The file's text.
    pub fn render(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        out.push_str(
            "# rxvault key file. Keep it secret, and away from the vault's data directory and backups.\n\
             # Without it the vault cannot be opened: keep a copy somewhere safe (not with the data).\n",
        );
        out.push_str(HEADER);
        out.push('\n');
        out.push_str(&format!("vault {}\n", self.vault_id));
        let mut keys: Vec<&(u32, SecretKey)> = self.keys.iter().collect();
        keys.sort_by_key(|(v, _)| *v);
        for (v, k) in keys {
            out.push_str(&format!("kek {v} "));
            out.push_str(&B64.encode(k.expose()));
            out.push('\n');
        }
        out
    }

    /// Reads a key file, refusing one other users can access.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let io_err = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
        Self::parse(&path.display().to_string(), &text)
    }

    /// Writes the key file atomically (temporary file, fsync, rename, fsync
    /// of the directory), mode 0600, creating the directory (mode 0700) if
    /// needed.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let io_err = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
        ));
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        let text = self.render();
        f.write_all(text.as_bytes()).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/v.key");
        let mut kf = KeyFile::new("vault-a", 1, SecretKey::generate().unwrap());
        kf.insert(2, SecretKey::generate().unwrap());
        kf.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = KeyFile::load(&path).unwrap();
        assert_eq!(back.vault_id, "vault-a");
        assert_eq!(back.versions(), vec![1, 2]);
        assert_eq!(back.get(2).unwrap().expose(), kf.get(2).unwrap().expose());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyFile::load(&path),
            Err(KeyFileError::Permissions { .. })
        ));
    }

    #[test]
    fn syntax_errors_name_the_line_and_never_the_key() {
        let text = "rxvault-keyfile v1\nvault a\nkek 1 c2VjcmV0\n";
        let e = KeyFile::parse("k", text).unwrap_err().to_string();
        assert!(e.starts_with("k:3:"), "{e}");
        assert!(!e.contains("c2VjcmV0"));
        assert!(KeyFile::parse("k", "").is_err());
        assert!(KeyFile::parse("k", "rxvault-keyfile v1\nvault a\n").is_err());
        assert!(KeyFile::parse("k", "hello\n").is_err());
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(id in "[a-z0-9]{1,32}", keys in proptest::collection::btree_map(1u32..1000, any::<[u8; 32]>(), 1..4)) {
            let mut kf: Option<KeyFile> = None;
            for (v, k) in &keys {
                match &mut kf {
                    None => kf = Some(KeyFile::new(&id, *v, SecretKey::from_bytes(*k))),
                    Some(f) => f.insert(*v, SecretKey::from_bytes(*k)),
                }
            }
            let kf = kf.unwrap();
            let back = KeyFile::parse("k", &kf.render()).unwrap();
            prop_assert_eq!(&back.vault_id, &id);
            for (v, k) in &keys {
                prop_assert_eq!(back.get(*v).unwrap().expose(), k);
            }
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = KeyFile::parse("k", &text);
        }
    }
}
