//! API keys and passwords: making keys, their keyed hash, and argon2id password hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

use crate::state::AppState;
use crate::storage::identities;
use crate::storage::{StorageError, StorageResult};

/// Characters after the prefix: 36 base-62 characters, about 214 bits.
const KEY_CHARS: usize = 36;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The `auth_secrets` row keys are hashed under.
const SECRET_NAME: &str = "api_key_hmac";

/// `pnu_` (a user's key) or `pnb_` (a service account's), then random base-62 characters.
pub fn generate(prefix: &str) -> Result<String, String> {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(prefix.len() + KEY_CHARS);
    out.push_str(prefix);
    let mut buf = [0u8; 64];
    while out.len() < prefix.len() + KEY_CHARS {
        rng.fill(&mut buf)
            .map_err(|_| "the system random generator failed".to_string())?;
        // 248 = 4 × 62: bytes above it are dropped, so every character is equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == prefix.len() + KEY_CHARS {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b % 62)]));
        }
    }
    Ok(out)
}

/// Whether `text` has the shape of a key Orrery makes (so other text never reaches the database).
pub fn looks_like_key(text: &str) -> bool {
    (text.starts_with("pnu_") || text.starts_with("pnb_")) && made_with(text, 4)
}

/// Whether `text` is a `prefix_len`-character prefix and the random part [`generate`] makes.
pub fn made_with(text: &str, prefix_len: usize) -> bool {
    text.len() == prefix_len + KEY_CHARS
        && text
            .bytes()
            .skip(prefix_len)
            .all(|b| b.is_ascii_alphanumeric())
}

/// Hex HMAC-SHA-256 of `text` under `secret`.
pub fn hash(secret: &[u8], text: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, text.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `mac` is [`hash`] of `text` under `secret`, compared in constant time.
pub fn verify(secret: &[u8], text: &str, mac: &str) -> bool {
    same_bytes(&hash(secret, text), mac)
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn same_bytes(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Random bytes as hex.
fn random_hex(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| "the system random generator failed".to_string())?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The installation's hashing secret: made by the first migration run (or at first use), stored
/// in nebula, read once per process.
pub async fn installation_secret(state: &AppState) -> StorageResult<Vec<u8>> {
    let secret = state
        .key_secret
        .get_or_try_init(|| async {
            let mut c = state.stores.nebula.read().await?;
            if let Some(hex) = identities::find_secret(&mut c, SECRET_NAME).await? {
                return Ok(hex.into_bytes());
            }
            drop(c);
            state
                .stores
                .nebula
                .write(async move |c| secret_of(c).await)
                .await
        })
        .await?;
    Ok(secret.clone())
}

/// The hashing secret, made when missing (a write).
pub async fn secret_of(c: &mut crate::storage::Conn) -> StorageResult<Vec<u8>> {
    let fresh = random_hex(32).map_err(StorageError::Pool)?;
    let hex = identities::ensure_secret(c, SECRET_NAME, &fresh).await?;
    Ok(hex.into_bytes())
}

/// An argon2id hash of a random password nobody knows, checked when a login names no user, so
/// that failing for an unknown user takes as long as failing for a wrong password.
pub const STAND_IN_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3RhbmRpbmZvcnVzZXJz$Y0JMqnPy7HlxGqI+ztYdQrPcfAYz3d2l0qJ3yLC6cLc";

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "the system random generator failed".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `phc`.
pub fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_recognised() {
        let a = generate("pnu_").expect("key");
        let b = generate("pnb_").expect("key");
        assert!(looks_like_key(&a) && looks_like_key(&b));
        assert_ne!(a[4..], b[4..]);
        assert!(!looks_like_key("pnu_short"));
        assert!(!looks_like_key(&format!("xyz_{}", &a[4..])));
        assert_eq!(hash(b"s", "k"), hash(b"s", "k"));
        assert_ne!(hash(b"s", "k"), hash(b"t", "k"));
        assert_eq!(hash(b"s", "k").len(), 64);
    }

    #[test]
    fn passwords_verify_against_their_argon2id_hash_only() {
        let phc = hash_password("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(password_matches("correct horse", &phc));
        assert!(!password_matches("wrong", &phc));
        assert!(!password_matches("correct horse", "not a phc string"));
        assert!(
            PasswordHash::new(STAND_IN_HASH).is_ok(),
            "the stand-in parses, so it costs a full check"
        );
        assert!(!password_matches("", STAND_IN_HASH));
    }
}
