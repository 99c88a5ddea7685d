//! The escrow kit on disk: `rxvault keys escrow` writes it, restores and
//! drills open it. The sealing itself is rxvault-crypto's
//! ([`rxvault_crypto::escrow`]).

use crate::{Error, Result, io_err};
use rxvault_audit::{Action, Outcome};
use rxvault_crypto::Passphrase;
use rxvault_crypto::keyfile::KeyFile;
use rxvault_vault::Vault;
use rxvault_vault::access::Requester;
use rxvault_vault::config::KeyKind;
use std::path::{Path, PathBuf};

/// An escrow kit and the passphrase that opens it.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The kit's file.
    pub path: PathBuf,
    /// Its passphrase (not the vault's key, not the repository password).
    pub passphrase: Passphrase,
}

impl Kit {
    /// Opens the kit: the key file it holds. Fails clearly (and changes
    /// nothing) when the kit is missing, malformed or the passphrase wrong.
    pub fn open(&self) -> Result<KeyFile> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            Error::Escrow(format!(
                "{}: {e} (restoring needs the escrow kit `rxvault keys escrow` wrote)",
                self.path.display()
            ))
        })?;
        rxvault_crypto::escrow::open(&self.path.display().to_string(), &text, &self.passphrase)
            .map_err(|e| match e {
                rxvault_crypto::Error::WrongKey => Error::Escrow(format!(
                    "{}: the passphrase does not open this kit (or the kit was altered)",
                    self.path.display()
                )),
                e => Error::Escrow(e.to_string()),
            })
    }
}

/// The fewest characters an escrow passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = rxvault_vault::keys::MIN_PASSPHRASE_CHARS;

/// Writes `vault`'s escrow kit to the new file `out` (mode 0600, never
/// inside the data directory): the key file `key_file` (every KEK version
/// in it) sealed under `passphrase`. Audited (`key-admin`, `escrow`).
pub fn write_kit(
    vault: &Vault,
    key_file: &Path,
    passphrase: &Passphrase,
    out: &Path,
) -> Result<()> {
    let result = write_inner(vault, key_file, passphrase, out);
    let outcome = match &result {
        Ok(()) => Outcome::Success,
        Err(Error::Invalid(_) | Error::Escrow(_)) => Outcome::Denied,
        Err(_) => Outcome::Error,
    };
    vault.record(
        Requester::local()
            .entry(Action::KeyAdmin {
                operation: "escrow".into(),
                rotation: None,
            })
            .outcome(outcome),
    )?;
    result
}

fn write_inner(vault: &Vault, key_file: &Path, passphrase: &Passphrase, out: &Path) -> Result<()> {
    let config = vault.config();
    if config.key != KeyKind::File {
        return Err(Error::Invalid(
            "this vault's key is derived from its passphrase: that passphrase is what to keep offline \
             (escrow kits hold a key file's KEK)"
                .into(),
        ));
    }
    if passphrase.char_count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::Invalid(format!(
            "the escrow passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    if out.exists() {
        return Err(Error::Invalid(format!(
            "{} already exists; refusing to overwrite it",
            out.display()
        )));
    }
    if rxvault_vault::config::is_inside(out, &config.dir) {
        return Err(Error::Invalid(format!(
            "{} is inside the data directory: the kit must live apart from the data and its backups",
            out.display()
        )));
    }
    let kf = KeyFile::load(key_file).map_err(|e| Error::Escrow(e.to_string()))?;
    if kf.vault_id != config.vault_id {
        return Err(Error::Escrow(format!(
            "{} is the key file of vault {}, not of this vault ({})",
            key_file.display(),
            kf.vault_id,
            config.vault_id
        )));
    }
    let text = rxvault_crypto::escrow::seal(&kf, passphrase)?;
    let out = std::path::absolute(out).map_err(io_err(out))?;
    rxvault_vault::config::write_atomic(&out, text.as_bytes(), 0o600)?;
    Ok(())
}

/// Writes the key file a kit holds to a private temporary folder (0700,
/// the file 0600), for opening a restored vault; removed when dropped.
pub(crate) fn key_file_in_temp(kf: &KeyFile) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("rxvault-escrowed-key-")
        .tempdir()
        .map_err(io_err(std::env::temp_dir()))?;
    let path = dir.path().join(format!("{}.key", kf.vault_id));
    kf.save(&path).map_err(|e| Error::Escrow(e.to_string()))?;
    Ok((dir, path))
}
