//! Passwords (argon2id) and session tokens (JWT, HS256).

use crate::CommandError;
use argon2::password_hash::{Output, ParamsString, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash as PhcHash, Version};
use im_domain::event::Role;
use im_domain::values::{Password, PasswordHash};
use im_domain::{SessionId, UserId};
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

/// How much of the machine password hashing may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Threads that hash; each keeps one argon2 buffer (19 MiB) for its whole life.
    pub threads: usize,
    /// Hashes that may wait for a thread; one more is refused as busy at once.
    pub queue: usize,
}

impl Default for HashingLimits {
    /// Half the cores (at least one) hash, and 256 may wait.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self { threads: (cores / 2).max(1), queue: 256 }
    }
}

/// The most memory a stored hash may ask for (64 MiB); ours use 19 MiB.
const MAX_BLOCKS: usize = 64 * 1024;

enum Work {
    Hash(String),
    Verify { plain: String, hash: String },
}

enum Done {
    Hashed(PasswordHash),
    Verified(bool),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, CommandError>>,
    /// Held until the job is done, so a caller that gave up still counts.
    _slot: OwnedSemaphorePermit,
}

/// Hashes and verifies passwords (argon2id, slow and memory-hard on purpose) on a few
/// threads of their own, off the async runtime. Each thread reuses one buffer, so the
/// memory is `threads × 19 MiB` however many requests come; at most
/// `threads + queue` are taken in at once and the rest are refused as busy.
#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    slots: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(HashingLimits::default())
    }
}

impl Passwords {
    /// Starts the hashing threads; they stop when the last handle is dropped.
    pub fn new(limits: HashingLimits) -> Self {
        let threads = limits.threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("im-hash-{n}")).spawn(move || work(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self { jobs, slots: Arc::new(Semaphore::new(threads + limits.queue)) }
    }

    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, CommandError> {
        match self.run(Work::Hash(password.expose().to_owned())).await? {
            Done::Hashed(hash) => Ok(hash),
            Done::Verified(_) => Err(CommandError::Internal("hashing answered a verification".into())),
        }
    }

    /// True when `plain` matches the stored hash.
    pub async fn verify(&self, plain: &str, hash: &PasswordHash) -> Result<bool, CommandError> {
        match self.run(Work::Verify { plain: plain.to_owned(), hash: hash.0.clone() }).await? {
            Done::Verified(matches) => Ok(matches),
            Done::Hashed(_) => Err(CommandError::Internal("verification answered a hash".into())),
        }
    }

    async fn run(&self, work: Work) -> Result<Done, CommandError> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| CommandError::Busy)?;
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { work, reply, _slot: slot }).map_err(|_| CommandError::Internal("password hashing stopped".into()))?;
        answer.await.map_err(|_| CommandError::Internal("password hashing stopped".into()))?
    }
}

/// One hashing thread: takes jobs until every handle is gone, reusing its buffer.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let done = match job.work {
            Work::Hash(plain) => hash_with(&mut memory, plain.as_bytes()).map(Done::Hashed),
            Work::Verify { plain, hash } => verify_with(&mut memory, plain.as_bytes(), &hash).map(Done::Verified),
        };
        let _ = job.reply.send(done);
    }
}

/// The first `count` blocks of the thread's buffer, grown (never shrunk) to fit.
fn blocks(memory: &mut Vec<Block>, count: usize) -> Result<&mut [Block], CommandError> {
    if count > MAX_BLOCKS {
        return Err(CommandError::Internal(format!("stored hash wants {count} KiB of memory")));
    }
    if memory.len() < count {
        memory.resize(count, Block::default());
    }
    Ok(&mut memory[..count])
}

fn internal(e: impl std::fmt::Display) -> CommandError {
    CommandError::Internal(format!("argon2: {e}"))
}

/// A new argon2id hash (default parameters, random salt) in PHC form.
fn hash_with(memory: &mut Vec<Block>, plain: &[u8]) -> Result<PasswordHash, CommandError> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(internal)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let memory = blocks(memory, params.block_count())?;
    let output =
        Output::init_with(len, |out| argon.hash_password_into_with_memory(plain, salt_bytes, out, &mut *memory).map_err(Into::into))
            .map_err(internal)?;
    let phc = PhcHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(PasswordHash(phc.to_string()))
}

/// Recomputes the stored hash's function over `plain` and compares in constant time.
fn verify_with(memory: &mut Vec<Block>, plain: &[u8], stored: &str) -> Result<bool, CommandError> {
    let phc = PhcHash::new(stored).map_err(|e| CommandError::Internal(format!("stored hash: {e}")))?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else { return Ok(false) };
    let algorithm = Algorithm::try_from(phc.algorithm).map_err(internal)?;
    let version = phc.version.map(Version::try_from).transpose().map_err(internal)?.unwrap_or_default();
    let params = Params::try_from(&phc).map_err(internal)?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(internal)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let memory = blocks(memory, params.block_count())?;
    let computed = Output::init_with(expected.len(), |out| {
        argon.hash_password_into_with_memory(plain, salt_bytes, out, &mut *memory).map_err(Into::into)
    })
    .map_err(internal)?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (the JWT `sub` claim is a string).
    pub sub: String,
    /// The session this token belongs to; only the user's newest session is live.
    pub sid: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// The user id; 0 (no such user) when `sub` is not a number.
    pub fn user_id(&self) -> UserId {
        UserId(self.sub.parse().unwrap_or(0))
    }

    pub fn session(&self) -> SessionId {
        SessionId(self.sid)
    }
}

/// Why a token was refused before looking at any state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed or badly signed token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// Issues and checks session tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime_secs: i64,
}

impl Tokens {
    pub fn new(secret: &[u8], lifetime_secs: i64) -> Self {
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), lifetime_secs }
    }

    pub fn issue(&self, user: UserId, session: SessionId, role: Role, now_millis: i64) -> Result<String, CommandError> {
        let iat = now_millis / 1000;
        let claims = Claims { sub: user.0.to_string(), sid: session.0, role, iat, exp: iat + self.lifetime_secs };
        jsonwebtoken::encode(&Header::new(JwtAlgorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CommandError::Internal(format!("jwt: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(JwtAlgorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_hashes_are_argon2id_and_verify() {
        let p = Password::parse("secret99").unwrap_or_else(|_| unreachable!());
        let hash = Passwords::default().hash(&p).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(Passwords::default().verify("secret99", &hash).await.unwrap_or(false));
        assert!(!Passwords::default().verify("secret98", &hash).await.unwrap_or(true));
    }

    #[tokio::test]
    async fn hashes_agree_with_the_reference_implementation_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let p = Password::parse("secret99").unwrap_or_else(|_| unreachable!());
        let ours = Passwords::default().hash(&p).await.unwrap_or_else(|e| panic!("{e}"));
        let parsed = PhcHash::new(&ours.0).unwrap_or_else(|e| panic!("{e}"));
        assert!(Argon2::default().verify_password(b"secret99", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        // Stored hashes with other parameters (here smaller ones) still verify.
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap_or_default());
        let theirs = small.hash_password(b"secret99", &salt).map(|h| PasswordHash(h.to_string())).unwrap_or_else(|e| panic!("{e}"));
        assert!(Passwords::default().verify("secret99", &theirs).await.unwrap_or(false));
        assert!(!Passwords::default().verify("secret9", &theirs).await.unwrap_or(true));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_as_busy_at_once() {
        let passwords = Passwords::new(HashingLimits { threads: 1, queue: 1 });
        let p = Password::parse("secret99").unwrap_or_else(|_| unreachable!());
        let (a, b, c) = tokio::join!(passwords.hash(&p), passwords.hash(&p), passwords.hash(&p));
        let busy = [&a, &b, &c].iter().filter(|r| matches!(r, Err(CommandError::Busy))).count();
        assert_eq!(busy, 1, "one thread and one waiting place take two of three");
        assert!(passwords.hash(&p).await.is_ok(), "the places come back");
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries_and_expiry() {
        let tokens = Tokens::new(b"k1", 60);
        let sid = SessionId(Uuid::new_v4());
        let now = crate::now_millis();
        let t = tokens.issue(UserId(7), sid, Role::User, now).unwrap_or_default();
        let claims = tokens.verify(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((claims.user_id(), claims.session(), claims.role), (UserId(7), sid, Role::User));
        assert_eq!(Tokens::new(b"k2", 60).verify(&t), Err(TokenError::Invalid));
        assert_eq!(tokens.verify("not.a.token"), Err(TokenError::Invalid));
        let old = tokens.issue(UserId(7), sid, Role::User, now - 120_000).unwrap_or_default();
        assert_eq!(tokens.verify(&old), Err(TokenError::Expired));
    }
}
