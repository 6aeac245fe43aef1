//! Adoption (issue 12, item 2): a WordPress site on a server Pressluft reaches over SSH, copied
//! into a new site. The key pair Pressluft adopts with, the checks of the SSH location, and the
//! dry run's node query (`ansible/module_utils/pressluft_adopt.py` run as a script on the node;
//! the private key travels on the SSH session's stdin, never on a command line).
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use sea_orm::ConnectionTrait;

use crate::secrets::SecretBox;
use crate::ssh::SshError;
use crate::store;
pub use crate::store::adoptions::ADOPTION_KEY_ID;

/// The adoption module, run on the node as a script for dry runs.
pub const ADOPT_SCRIPT: &str = include_str!("../ansible/module_utils/pressluft_adopt.py");
/// The comment on the adoption public key (what an operator sees in `authorized_keys`).
pub const ADOPTION_KEY_COMMENT: &str = "pressluft-adoption";
const MAX_PATH: usize = 1024;

/// The adoption key pair in OpenSSH formats.
#[derive(Clone)]
pub struct AdoptionKey {
    /// Secret.
    pub private_openssh: String,
    /// `ssh-ed25519 AAAA… pressluft-adoption`
    pub public_openssh: String,
}

impl std::fmt::Debug for AdoptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdoptionKey")
            .field("private_openssh", &"<redacted>")
            .field("public_openssh", &self.public_openssh)
            .finish()
    }
}

/// The one adoption key pair, created (ed25519) on first use and kept encrypted in the secret
/// store: every replica and every restart shows the same public key.
pub async fn key(db: &impl ConnectionTrait, sb: &SecretBox) -> Result<AdoptionKey, SshError> {
    let pem = match store::secrets::get(db, sb, ADOPTION_KEY_ID).await? {
        Some(pem) => pem,
        None => {
            let fresh = generate()?;
            store::secrets::get_or_create(db, sb, ADOPTION_KEY_ID, || fresh).await?;
            store::secrets::get(db, sb, ADOPTION_KEY_ID)
                .await?
                .ok_or_else(|| SshError::Key("adoption key vanished after it was stored".into()))?
        }
    };
    let key = PrivateKey::from_openssh(&pem)
        .map_err(|e| SshError::Key(format!("stored adoption key does not parse: {e}")))?;
    let public_openssh = key
        .public_key()
        .to_openssh()
        .map_err(|e| SshError::Key(e.to_string()))?;
    Ok(AdoptionKey {
        private_openssh: pem,
        public_openssh,
    })
}

fn generate() -> Result<String, SshError> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment(ADOPTION_KEY_COMMENT);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SshError::Key(e.to_string()))?;
    Ok(pem.to_string())
}

/// `SHA256:…` of an OpenSSH public key line (as `ssh-keygen -lf` shows it).
pub fn fingerprint(public_openssh: &str) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let blob = public_openssh.split_whitespace().nth(1)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = sha2::Sha256::digest(&raw);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// An OpenSSH host key line `type base64` (what a dry run returns and an adoption pins).
pub fn is_host_key(v: &str) -> bool {
    let mut it = v.split(' ');
    let (Some(kind), Some(blob), None) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    matches!(
        kind,
        "ssh-ed25519"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
            | "ssh-rsa"
    ) && !blob.is_empty()
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// The WordPress root on the source: absolute, no `..`, no control characters.
pub fn is_source_path(v: &str) -> bool {
    v.starts_with('/')
        && v.len() <= MAX_PATH
        && !v.split('/').any(|p| p == "..")
        && !v.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_host_keys() {
        for ok in ["/home/u/www", "/var/www/html/", "/srv/wp site"] {
            assert!(is_source_path(ok), "{ok}");
        }
        for bad in ["www", "", "/home/u/../root", "/a\nb", "~/www"] {
            assert!(!is_source_path(bad), "{bad:?}");
        }
        assert!(is_host_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+x/y="));
        for bad in [
            "ssh-ed25519",
            "ssh-dss AAAA",
            "ssh-ed25519 AAAA comment",
            "ssh-ed25519 AA;rm",
        ] {
            assert!(!is_host_key(bad), "{bad}");
        }
        assert_eq!(
            fingerprint(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
            )
            .unwrap()
            .len(),
            50
        );
    }

    #[tokio::test]
    async fn the_key_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::test_database(dir.path()).await;
        let sb = SecretBox::from_key(&[7; 32]);
        let a = key(&db, &sb).await.unwrap();
        let b = key(&db, &sb).await.unwrap();
        assert_eq!(a.public_openssh, b.public_openssh);
        assert!(a.public_openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(a.public_openssh.ends_with(ADOPTION_KEY_COMMENT));
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }
}
