//! The KEK escrow kit: a vault's key file sealed under a passphrase of its
//! own, to print or keep offline. Backups never hold the KEK; restoring
//! one takes this kit (and its passphrase).
//!
//! ```text
//! # rxvault KEK escrow kit. ...
//! rxvault-escrow v1
//! vault 5d0c2f0e8a4b4c1f9e3a7b6d2c1e0f9a
//! kdf argon2id$v=19$m=65536,t=3,p=1$<salt>
//! sealed <base64: 12-byte nonce, AES-256-GCM of the key file's text>
//! ```
//! The key is Argon2id of the escrow passphrase with a fresh salt (the
//! `kdf` line); the header, vault and `kdf` lines are the associated data,
//! so none of them can be swapped. The escrow passphrase is neither the
//! vault's key nor a backup repository's password.

use crate::kek::KdfParams;
use crate::keyfile::{KeyFile, KeyFileError};
use crate::secret::Passphrase;
use crate::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const HEADER: &str = "rxvault-escrow v1";

fn aad(vault_id: &str, kdf: &str) -> String {
    format!("{HEADER}\nvault {vault_id}\nkdf {kdf}\n")
}

fn aead(kdf: &KdfParams, passphrase: &Passphrase) -> Result<LessSafeKey> {
    let key = kdf.derive(passphrase)?;
    let unbound =
        UnboundKey::new(&AES_256_GCM, key.expose()).map_err(|_| Error::Kdf("key size".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals `key_file` (every KEK version it holds) under `passphrase`: the
/// kit's text, safe to print (nothing in it opens without the passphrase).
pub fn seal(key_file: &KeyFile, passphrase: &Passphrase) -> Result<String> {
    let kdf = KdfParams::generate()?;
    let kdf_text = kdf.to_string();
    let key = aead(&kdf, passphrase)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Random)?;
    let mut body = Zeroizing::new(key_file.render().as_bytes().to_vec());
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(&key_file.vault_id, &kdf_text).as_bytes()),
        &mut *body,
    )
    .map_err(|_| Error::Random)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&body);
    Ok(format!(
        "# rxvault KEK escrow kit: the key of vault {id}, sealed under its own passphrase.\n\
         # Print it or keep it offline, apart from the backups. Restoring a backup needs it.\n\
         {HEADER}\nvault {id}\nkdf {kdf_text}\nsealed {}\n",
        B64.encode(&sealed),
        id = key_file.vault_id,
    ))
}

/// The vault id a kit names (readable without the passphrase).
pub fn vault_id(path: &str, text: &str) -> Result<String> {
    Ok(parse(path, text)?.0)
}

fn parse(path: &str, text: &str) -> Result<(String, String, Vec<u8>)> {
    let err = |line: usize, message: &str| {
        Error::KeyFile(KeyFileError::Syntax {
            path: path.to_string(),
            line,
            message: message.to_string(),
        })
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
                "not an rxvault escrow kit (expected `rxvault-escrow v1`)",
            ));
        }
        None => return Err(err(1, "empty escrow kit")),
    }
    let (mut vault, mut kdf, mut sealed) = (None, None, None);
    for (n, line) in lines {
        match line.split_once(' ') {
            Some(("vault", v)) if vault.is_none() => vault = Some(v.to_string()),
            Some(("kdf", v)) if kdf.is_none() => kdf = Some(v.to_string()),
            Some(("sealed", v)) if sealed.is_none() => {
                sealed = Some(
                    B64.decode(v.trim_end_matches('='))
                        .map_err(|_| err(n, "the sealed key is not valid base64"))?,
                )
            }
            _ => return Err(err(n, "expected one `vault`, `kdf` and `sealed` line")),
        }
    }
    match (vault, kdf, sealed) {
        (Some(v), Some(k), Some(s)) => Ok((v, k, s)),
        _ => Err(err(1, "the kit lacks its `vault`, `kdf` or `sealed` line")),
    }
}

/// Opens a kit with its passphrase: the key file it holds.
/// [`Error::WrongKey`] if the passphrase is wrong or the kit was altered.
pub fn open(path: &str, text: &str, passphrase: &Passphrase) -> Result<KeyFile> {
    let (vault_id, kdf_text, sealed) = parse(path, text)?;
    let kdf = KdfParams::parse(&kdf_text)?;
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::WrongKey);
    }
    let key = aead(&kdf, passphrase)?;
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::WrongKey)?;
    let mut body = Zeroizing::new(body.to_vec());
    let plain = key
        .open_in_place(
            nonce,
            Aad::from(aad(&vault_id, &kdf_text).as_bytes()),
            &mut body,
        )
        .map_err(|_| Error::WrongKey)?;
    let text = Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(|_| Error::WrongKey)?);
    let key_file = KeyFile::parse(path, &text)?;
    if key_file.vault_id != vault_id {
        return Err(Error::WrongKey);
    }
    Ok(key_file)
}

/// Age recipients whose identity is dropped at once: what a restore drill
/// exports to, so that every record is decrypted (and re-encrypted) while
/// nothing it writes can be read by anyone.
pub fn unreadable_recipients() -> Result<crate::export::Recipients> {
    let identity = age::x25519::Identity::generate();
    crate::export::Recipients::parse(&[identity.to_public().to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    #[test]
    fn a_kit_opens_with_its_passphrase_only_and_holds_every_version() {
        let mut kf = KeyFile::new("vault-a", 1, SecretKey::generate().unwrap());
        kf.insert(2, SecretKey::generate().unwrap());
        let pass = Passphrase::new("a long escrow passphrase\n".into());
        let kit = seal(&kf, &pass).unwrap();
        assert!(!kit.contains(&B64.encode(kf.get(1).unwrap().expose())));
        assert_eq!(vault_id("kit", &kit).unwrap(), "vault-a");
        let back = open("kit", &kit, &pass).unwrap();
        assert_eq!(back.versions(), vec![1, 2]);
        assert_eq!(back.get(2).unwrap().expose(), kf.get(2).unwrap().expose());
        let wrong = Passphrase::new("another passphrase entirely".into());
        assert!(matches!(open("kit", &kit, &wrong), Err(Error::WrongKey)));
        // The vault line is bound: a kit relabelled for another vault fails.
        let moved = kit.replace("vault vault-a", "vault vault-b");
        assert!(matches!(open("kit", &moved, &pass), Err(Error::WrongKey)));
        assert!(matches!(
            open("kit", "hello\n", &pass),
            Err(Error::KeyFile(_))
        ));
    }
}
