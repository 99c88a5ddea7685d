//! Where the key comes from on the command line: `--key-file`,
//! `--passphrase-file` (or their environment variables), or a prompt on the
//! terminal for passphrase vaults.

use anyhow::{Context, Result};
use clap::Args;
use rxvault_crypto::Passphrase;
use rxvault_vault::KeySource;
use rxvault_vault::config::{KeyKind, VaultConfig};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Key flags shared by every command that opens a vault.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The vault's key file (default: the one recorded at init, or
    /// ~/.config/rxvault/keys/<vault id>.key).
    #[arg(long, env = "RXVAULT_KEY_FILE", conflicts_with = "passphrase_file")]
    pub key_file: Option<PathBuf>,
    /// A file holding the vault's passphrase.
    #[arg(long, env = "RXVAULT_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The key source the flags name, if any.
    pub fn source(&self) -> Result<Option<KeySource>> {
        Ok(match (&self.key_file, &self.passphrase_file) {
            (_, Some(p)) => Some(KeySource::Passphrase(read_passphrase(p)?)),
            (Some(k), None) => Some(KeySource::File(k.clone())),
            (None, None) => None,
        })
    }
}

/// Reads a passphrase from a file (one trailing newline is not part of it).
pub fn read_passphrase(path: &Path) -> Result<Passphrase> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("passphrase file {}", path.display()))?;
    Ok(Passphrase::new(text))
}

/// For a passphrase vault opened from a terminal without a passphrase file,
/// asks for the passphrase.
pub fn prompt_if_passphrase(data: &Path) -> Result<Option<KeySource>> {
    let Ok(config) = VaultConfig::load(data) else {
        return Ok(None);
    };
    if config.key != KeyKind::Passphrase || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let text =
        rpassword::prompt_password("vault passphrase: ").context("reading the passphrase")?;
    Ok(Some(KeySource::Passphrase(Passphrase::new(text))))
}
