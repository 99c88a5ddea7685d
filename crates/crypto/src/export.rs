//! Encryption of exported files to [age](https://age-encryption.org)
//! recipients, so an export that leaves the machine is as unreadable as the
//! vault. Any age implementation (the `age` CLI, rage) decrypts them with the
//! matching identity.

use crate::{Error, Result};
use std::io::Write;
use std::str::FromStr;

/// Parsed age recipients (X25519 public keys, `age1...`).
#[derive(Debug, Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    /// Parses recipients; the error names the one that is not valid.
    pub fn parse<S: AsRef<str>>(recipients: &[S]) -> Result<Self> {
        if recipients.is_empty() {
            return Err(Error::Export("no recipients".into()));
        }
        recipients
            .iter()
            .map(|r| {
                let r = r.as_ref().trim();
                age::x25519::Recipient::from_str(r).map_err(|e| {
                    Error::Export(format!(
                        "recipient {r:?} is not an age X25519 public key: {e}"
                    ))
                })
            })
            .collect::<Result<_>>()
            .map(Recipients)
    }

    /// The recipients' public keys (`age1...`), as an audit entry records
    /// whom an export was encrypted to. Public: no secret in them.
    pub fn public_keys(&self) -> Vec<String> {
        self.0.iter().map(|r| r.to_string()).collect()
    }

    /// Wraps `output`: what is written to the result is encrypted to every
    /// recipient. Call [`EncryptedWriter::finish`] at the end.
    pub fn encrypt<W: Write>(&self, output: W) -> Result<EncryptedWriter<W>> {
        let encryptor =
            age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| Error::Export(e.to_string()))?;
        encryptor
            .wrap_output(output)
            .map(EncryptedWriter)
            .map_err(|e| Error::Export(e.to_string()))
    }
}

/// A writer encrypting to age recipients.
pub struct EncryptedWriter<W: Write>(age::stream::StreamWriter<W>);

impl<W: Write> EncryptedWriter<W> {
    /// Writes the final chunk; without it the file is truncated and will not
    /// decrypt.
    pub fn finish(self) -> std::io::Result<W> {
        self.0.finish()
    }
}

impl<W: Write> Write for EncryptedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn encrypt_to_a_recipient_and_decrypt_with_its_identity() {
        let identity = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[identity.to_public().to_string()]).unwrap();
        assert_eq!(
            recipients.public_keys(),
            vec![identity.to_public().to_string()]
        );
        let mut w = recipients.encrypt(Vec::new()).unwrap();
        w.write_all(b"{\"resourceType\":\"Patient\"}\n").unwrap();
        let sealed = w.finish().unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"Patient"));
        let decryptor = age::Decryptor::new(&sealed[..]).unwrap();
        let mut out = String::new();
        decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "{\"resourceType\":\"Patient\"}\n");
        assert!(Recipients::parse(&["nope"]).is_err());
        assert!(Recipients::parse::<&str>(&[]).is_err());
    }
}
