//! Credentials: argon2id password hashes (computed on a few dedicated threads, `hasher`),
//! HS256 access tokens (`sub`, `iat`, `exp`), and the retention of ended login sessions.
//! Where a token is taken from a request lives in `http`.

mod hasher;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::SaltString;
use deadpool_postgres::GenericClient;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::store::{sessions, StoreResult};

/// Tokens longer than this are refused before any parsing (ours are ~200 bytes).
pub const MAX_TOKEN_LEN: usize = 4096;

/// Clock leeway when checking `exp`: the contract allows at most 60 s.
const EXP_LEEWAY_SECS: u64 = 60;

/// Tokens remembered as verified. Checking a signature (HMAC-SHA256, base64, claims JSON)
/// was 18 % of a message send's server instructions; a client presents the same token on
/// every request for its lifetime, so one verification serves them all. 8,192 entries of
/// ~300 bytes is ~2.5 MiB; when full, the cache starts over (every client re-verifies once).
const VERIFIED_CACHE: usize = 8192;

/// Why a token is refused (the edge's 401, with `reason` as its detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than `MAX_TOKEN_LEN`: refused before any parsing.
    TooLong,
    /// Its `exp` (plus the leeway) has passed.
    Expired,
    /// Malformed, wrongly signed, another algorithm, or claims that are not ours.
    Invalid,
}

impl TokenError {
    /// What the client is told.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::TooLong => "the token is too long",
            TokenError::Expired => "the token has expired",
            TokenError::Invalid => "the token is invalid",
        }
    }
}

/// What signing a token or hashing a password can fail with.
#[derive(Debug)]
pub enum CredentialError {
    /// Every password hashing thread is busy and their queue is full: retry shortly.
    Busy,
    /// A fault of rtchat's own (signing, hashing, a hashing job that panicked).
    Bug(String),
}

/// The claims of an rtchat access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string (JWT's `sub` is a string).
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    /// The login session this token belongs to.
    pub sid: i64,
}

/// A verified caller.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: i64,
    /// The login session of the token.
    pub session_id: i64,
    /// Unix seconds when the token expires; sockets close with 4001 then.
    pub expires_at: u64,
}

/// Signs and verifies tokens, hashes and checks passwords.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens whose signature and claims were verified, by their exact text. Only what a
    /// token says is cached: expiry is checked on every use, revocation by the caller.
    verified: Mutex<HashMap<Box<str>, Caller>>,
    /// A hash of a random password, checked when the email is unknown so that a login for an
    /// unknown email costs the same time as a wrong password (no account enumeration).
    dummy_hash: OnceCell<String>,
}

impl Auth {
    pub fn new(secret: &[u8], ttl: Duration) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = EXP_LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            verified: Mutex::new(HashMap::new()),
            dummy_hash: OnceCell::new(),
        }
    }

    /// The access token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new access token for `user_id` in session `session_id`.
    pub fn issue(&self, user_id: i64, session_id: i64) -> Result<String, CredentialError> {
        let now = unix_now();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            sid: session_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CredentialError::Bug(format!("jwt encode: {e}")))
    }

    /// Checks a token's signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let cached = self
            .verified
            .lock()
            .expect("token cache lock poisoned")
            .get(token)
            .copied();
        if let Some(caller) = cached {
            // The same rule as jsonwebtoken's: expired once now > exp + leeway.
            if unix_now() > caller.expires_at.saturating_add(EXP_LEEWAY_SECS) {
                return Err(TokenError::Expired);
            }
            return Ok(caller);
        }
        let caller = self.verify_signature(token)?;
        let mut verified = self.verified.lock().expect("token cache lock poisoned");
        if verified.len() >= VERIFIED_CACHE {
            verified.clear();
        }
        verified.insert(token.into(), caller);
        Ok(caller)
    }

    fn verify_signature(&self, token: &str) -> Result<Caller, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let user_id = data
            .claims
            .sub
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or(TokenError::Invalid)?;
        Ok(Caller {
            user_id,
            session_id: data.claims.sid,
            expires_at: data.claims.exp,
        })
    }

    /// An argon2id PHC string for `password`, computed on a hashing thread; `Busy` when too
    /// many hashes are waiting already.
    pub async fn hash_password(&self, password: String) -> Result<String, CredentialError> {
        hasher::Pool::global()
            .run(move |area| {
                let mut salt = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut salt);
                let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
                hasher::hash(area, password.as_bytes(), salt.as_salt())
            })
            .await?
    }

    /// Whether `password` matches `hash`; with no hash (unknown email) it checks a dummy one
    /// and answers false, taking the same time.
    pub async fn verify_password(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, CredentialError> {
        let known = hash.is_some();
        let hash = match hash {
            Some(h) => h,
            None => self
                .dummy_hash
                .get_or_try_init(|| async {
                    let mut random = [0u8; 24];
                    rand::thread_rng().fill_bytes(&mut random);
                    self.hash_password(hex(&random)).await
                })
                .await?
                .clone(),
        };
        let matches = hasher::Pool::global()
            .run(move |area| hasher::verify(area, password.as_bytes(), &hash))
            .await?;
        Ok(known && matches)
    }
}

/// How long an ended session is kept beyond the last moment a token of it could still be
/// accepted: `exp` is stamped by a server's clock, `expires_at` and `revoked_at` by
/// PostgreSQL's, and the two may disagree.
const SESSION_PRUNE_MARGIN: Duration = Duration::from_secs(3600);

/// Deletes the login sessions that no token can use any more, with their refresh tokens;
/// returns how many sessions went.
///
/// A session is kept while an access token of it may still be presented: after it expires,
/// the tokens of its last refresh live one access-token lifetime more; after it is revoked,
/// every process must keep rejecting them for as long, which it knows from `revoked_at`
/// (`Revoked::load` reads the revocations of the last lifetime plus leeway). So only
/// sessions that ended longer ago than the lifetime, the leeway and `SESSION_PRUNE_MARGIN`
/// are deleted: every token they ever issued is refused as expired, and no process would
/// load their revocation any more.
pub async fn prune_sessions(client: &impl GenericClient, token_ttl: Duration) -> StoreResult<u64> {
    let ended = token_ttl + Duration::from_secs(EXP_LEEWAY_SECS) + SESSION_PRUNE_MARGIN;
    sessions::prune(client, ended).await
}

/// A new refresh token (random, URL-safe) and the SHA-256 under which it is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = hex(&bytes);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

/// The stored form of a refresh token.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// A random secret for processes started without `JWT_SECRET`.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The signing secret kept in `path` (the embedded deployment's data directory), created on
/// first use with a random value readable by this user only (0600), so tokens outlive a
/// restart without the operator setting `JWT_SECRET`.
pub fn load_or_create_secret(path: &std::path::Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().to_string();
            if secret.len() < 16 {
                return Err(format!(
                    "{}: the kept JWT secret is shorter than 16 characters",
                    path.display()
                ));
            }
            return Ok(secret);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "{}: cannot read the JWT secret: {e}",
                path.display()
            ))
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let secret = random_secret();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: cannot create the JWT secret: {e}", path.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: cannot write the JWT secret: {e}", path.display()))?;
    Ok(secret)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::load_or_create_secret;

    #[test]
    fn the_kept_secret_is_created_private_then_reused_and_a_short_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rtchat-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("jwt_secret");
        let made = load_or_create_secret(&path).expect("created");
        assert!(made.len() >= 16);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_secret(&path).expect("reused"), made);
        std::fs::write(&path, "short\n").unwrap();
        let refused = load_or_create_secret(&path).expect_err("too short to sign with");
        assert!(refused.contains("shorter than 16"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    use super::*;

    #[test]
    fn a_token_verifies_with_its_secret_only() {
        let auth = Auth::new(b"0123456789abcdef0123", Duration::from_secs(60));
        let token = auth.issue(42, 7).unwrap();
        assert_eq!(auth.verify(&token).unwrap().user_id, 42);
        let other = Auth::new(b"another-secret-entirely", Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
        assert!(auth.verify("garbage").is_err());
        assert!(auth.verify(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn an_alg_none_token_is_refused() {
        let auth = Auth::new(b"0123456789abcdef0123", Duration::from_secs(60));
        // {"alg":"none","typ":"JWT"}.{"sub":"1","iat":0,"exp":9999999999}.
        let token =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwiaWF0IjowLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(auth.verify(token).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires_and_the_memory_is_bounded() {
        let auth = Auth::new(b"0123456789abcdef0123", Duration::from_secs(60));
        let token = auth.issue(42, 7).unwrap();
        assert_eq!(auth.verify(&token).unwrap().user_id, 42);
        assert_eq!(
            auth.verified.lock().unwrap().len(),
            1,
            "verified once, remembered"
        );
        // Time passes beyond exp + leeway while the token sits in the cache.
        auth.verified
            .lock()
            .unwrap()
            .get_mut(token.as_str())
            .unwrap()
            .expires_at = unix_now() - EXP_LEEWAY_SECS - 1;
        assert!(matches!(auth.verify(&token), Err(TokenError::Expired)));
        // Within the leeway it still works, as jsonwebtoken's own check says.
        auth.verified
            .lock()
            .unwrap()
            .get_mut(token.as_str())
            .unwrap()
            .expires_at = unix_now() - EXP_LEEWAY_SECS + 5;
        assert!(auth.verify(&token).is_ok());
        // A forged token is never remembered.
        // One character of the signature changed (not the last, whose low bits are padding).
        let at = token.len() - 10;
        let swap = if &token[at..at + 1] == "A" { "B" } else { "A" };
        let forged = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
        assert!(auth.verify(&forged).is_err());
        assert!(!auth.verified.lock().unwrap().contains_key(forged.as_str()));
        for user in 0..VERIFIED_CACHE as i64 + 10 {
            auth.verify(&auth.issue(user + 1, 1).unwrap()).unwrap();
        }
        assert!(auth.verified.lock().unwrap().len() <= VERIFIED_CACHE);
    }
}
