//! The secret box: XChaCha20-Poly1305 with a 32-byte key kept in the data directory (mode 0600)
//! or given by `PRESSLUFT_SECRET_KEY`. The secret's id is authenticated data, so a ciphertext
//! copied onto another row does not decrypt.
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("secret key must be 32 bytes, hex or base64 encoded")]
    BadKey,
    #[error("ciphertext is malformed or was made with another key")]
    Decrypt,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Loads the key from `PRESSLUFT_SECRET_KEY`, else from `<data_dir>/secret.key`, creating that
    /// file on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(k) = std::env::var("PRESSLUFT_SECRET_KEY") {
            return Ok(Self::from_key(&decode_key(k.trim())?));
        }
        let path = data_dir.join("secret.key");
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Self::from_key(&decode_key(s.trim())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = crate::ids::random_token(32);
                write_private(&path, key.as_bytes()).map_err(|e| SecretError::KeyFile(shown, e))?;
                Ok(Self::from_key(&decode_key(&key)?))
            }
            Err(e) => Err(SecretError::KeyFile(shown, e)),
        }
    }

    pub fn seal(&self, id: &str, plaintext: &[u8]) -> String {
        use rand::RngCore;
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, id: &str, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| SecretError::Decrypt)?;
        if raw.len() < 24 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ct) = raw.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)
    }
}

fn decode_key(s: &str) -> Result<[u8; 32], SecretError> {
    let bytes = hex::decode(s)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or(SecretError::BadKey)?;
    bytes.try_into().map_err(|_| SecretError::BadKey)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bound_to_id() {
        let sb = SecretBox::from_key(&[7u8; 32]);
        let sealed = sb.seal("env/1/db_password", b"hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(sb.open("env/1/db_password", &sealed).unwrap(), b"hunter2");
        assert!(sb.open("env/2/db_password", &sealed).is_err());
        let other = SecretBox::from_key(&[8u8; 32]);
        assert!(other.open("env/1/db_password", &sealed).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = a.seal("x", b"y");
        let meta = std::fs::metadata(dir.path().join("secret.key")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let b = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(b.open("x", &sealed).unwrap(), b"y");
    }
}
