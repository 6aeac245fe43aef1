//! Identifiers. UUIDv7 keeps ids time-ordered (cheap keyset paging); its last 8 hex digits are
//! random, which is what the preview label needs (R6).
use uuid::Uuid;

pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// The preview label of an environment: the last 8 hex digits of its id, lower case.
pub fn preview_label(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    hex[hex.len().saturating_sub(8)..].to_ascii_lowercase()
}

/// A random token of `bytes` random bytes, hex encoded (sessions, API tokens, passwords).
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_last_eight_hex_digits() {
        assert_eq!(
            preview_label("01890a5d-ac96-774b-bcce-b302099a8057"),
            "099a8057"
        );
        assert_eq!(preview_label(&new_id()).len(), 8);
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(a < b);
    }
}
