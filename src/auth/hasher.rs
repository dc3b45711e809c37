//! Password hashing on a few dedicated threads, each reusing one argon2 work area.
//!
//! argon2id with the default parameters needs a 19 MiB work area per hash. Allocated and freed
//! per hash, those areas stayed resident: once glibc has seen one freed, it raises its mmap
//! threshold above that size and serves the later ones from its malloc heaps, which it does
//! not give back (the server grew by more than a GB under logins; docs/PERFORMANCE.md). Here
//! a fixed set of threads (one per core, at most `MAX_THREADS`) each allocates its area once
//! and reuses it, so hashing holds at most `MAX_THREADS` × 19 MiB, however many logins come.
//! Jobs wait in a bounded queue; when it is full the caller is told at once that the server
//! is busy.
//!
//! The PHC strings are exactly what `argon2`'s `PasswordHasher` writes (same algorithm,
//! version, parameters and encoding), and verification honours the parameters stored in each
//! hash, so hashes made before and after this module are interchangeable.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use super::CredentialError;

/// Hashing threads: one per core, but no more than this, since each keeps a 19 MiB work
/// area for the life of the process and a login needs one hash, not a whole machine.
const MAX_THREADS: usize = 4;

/// Hash jobs waiting for a thread. A hash takes ~20-50 ms of one core, so a full queue on two
/// cores is about a second of work: past that a login or registration is answered 503 at
/// once (the client retries later) instead of waiting in a queue that only grows.
const QUEUE: usize = 64;

/// The 1 KiB blocks of one work area: enough for rtchat's own parameters (argon2's defaults).
/// A stored hash with larger parameters is checked with a one-off allocation instead.
const AREA_BLOCKS: usize = Params::DEFAULT.block_count();

/// One unit of work, run on a hashing thread with that thread's work area.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads and their queue.
pub struct Pool {
    jobs: SyncSender<Job>,
}

impl Pool {
    /// Starts `threads` hashing threads fed by a queue of `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> Pool {
        let (jobs, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("rtchat-argon2-{i}"))
                .spawn(move || work(&receiver))
                .expect("a hashing thread starts");
        }
        Pool { jobs }
    }

    /// The process's pool, started on first use.
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Pool::new(cores.min(MAX_THREADS), QUEUE)
        })
    }

    /// Runs `f` on a hashing thread with its work area; a full queue is `Busy` at once.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, CredentialError> {
        self.submit(f)?
            .await
            .map_err(|_| CredentialError::Bug("a password hashing job panicked".into()))
    }

    /// Queues `f` at once (or refuses it); the receiver gets its result.
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, CredentialError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |area| {
            let _ = tx.send(f(area));
        });
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => CredentialError::Busy,
            TrySendError::Disconnected(_) => {
                CredentialError::Bug("the password hashing threads are gone".into())
            }
        })?;
        Ok(rx)
    }
}

/// A hashing thread: takes jobs until the pool is dropped.
fn work(jobs: &Mutex<Receiver<Job>>) {
    // Allocated by the first job that needs it, then kept.
    let mut area: Vec<Block> = Vec::new();
    loop {
        let job = {
            let receiver = jobs.lock().unwrap_or_else(|e| e.into_inner());
            receiver.recv()
        };
        let Ok(job) = job else { return };
        // A panicking job drops its reply (the caller gets a 500); the thread lives on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut area)));
    }
}

/// Fills `out` with the argon2 hash, in `area` when it is big enough for `argon`'s parameters.
fn compute(
    argon: &Argon2<'_>,
    area: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let needed = argon.params().block_count();
    if needed > AREA_BLOCKS {
        return argon.hash_password_into(password, salt, out);
    }
    if area.len() < AREA_BLOCKS {
        *area = vec![Block::default(); AREA_BLOCKS];
    }
    argon.hash_password_into_with_memory(password, salt, out, &mut area[..needed])
}

/// The PHC string of `password` with `salt` under rtchat's parameters (argon2's defaults),
/// as `PasswordHasher::hash_password` writes it.
pub fn hash(
    area: &mut Vec<Block>,
    password: &[u8],
    salt: Salt<'_>,
) -> Result<String, CredentialError> {
    let failed = |e: argon2::password_hash::Error| CredentialError::Bug(format!("argon2: {e}"));
    let argon = Argon2::default();
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(failed)?;
    let params = argon.params();
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        Ok(compute(&argon, area, password, salt_bytes, out)?)
    })
    .map_err(failed)?;
    let phc = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, under the parameters stored in it (as
/// `PasswordVerifier::verify_password`, with a constant-time comparison). Anything that does
/// not parse matches nothing.
pub fn verify(area: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    Output::init_with(expected.len(), |out| {
        Ok(compute(&argon, area, password, salt_bytes, out)?)
    })
    .is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};

    const SALT: &str = "c29tZXNhbHRzb21lc2FsdA";

    #[test]
    fn hashes_are_what_argon2s_own_hasher_writes() {
        let mut area = Vec::new();
        let salt = SaltString::from_b64(SALT).unwrap();
        let ours = hash(&mut area, b"correct horse", salt.as_salt()).unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert_eq!(ours, theirs);
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // The area is reused: a second hash with it gives the same answer.
        assert_eq!(area.len(), AREA_BLOCKS);
        assert_eq!(
            hash(&mut area, b"correct horse", salt.as_salt()).unwrap(),
            theirs
        );
        // And argon2's verifier accepts ours.
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
    }

    #[test]
    fn verification_honours_the_stored_parameters() {
        let mut area = Vec::new();
        let salt = SaltString::from_b64(SALT).unwrap();
        // Smaller and larger than our area, another variant, another version.
        for (algorithm, version, m, t) in [
            (Algorithm::Argon2id, Version::V0x13, 4096, 3),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                AREA_BLOCKS as u32 + 1024,
                1,
            ),
            (Algorithm::Argon2i, Version::V0x10, 1024, 2),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::DEFAULT_M_COST,
                2,
            ),
        ] {
            let params = Params::new(m, t, 1, None).unwrap();
            let stored = Argon2::new(algorithm, version, params)
                .hash_password(b"correct horse", &salt)
                .unwrap()
                .to_string();
            assert!(verify(&mut area, b"correct horse", &stored), "{stored}");
            assert!(!verify(&mut area, b"correct horsf", &stored), "{stored}");
        }
        assert!(!verify(&mut area, b"correct horse", "not a hash"));
        assert!(!verify(
            &mut area,
            b"correct horse",
            "$argon2id$v=19$m=19456,t=2,p=1"
        ));
    }

    #[tokio::test]
    async fn a_full_queue_is_a_503_not_a_longer_wait() {
        let pool = Pool::new(1, 1);
        // Hold the only thread until released.
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let first = pool
            .submit(move |_| {
                started_tx.send(()).unwrap();
                held.recv().unwrap();
                1
            })
            .unwrap();
        started
            .recv_timeout(std::time::Duration::from_secs(15))
            .unwrap();
        // The thread is busy: one job fits in the queue, the next is refused at once.
        let second = pool.submit(|_| 2).unwrap();
        // The edge answers it 503 server_busy (error.rs tests the mapping).
        let refused = pool.submit(|_| 3).unwrap_err();
        assert!(matches!(refused, CredentialError::Busy), "{refused:?}");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 1);
        assert_eq!(second.await.unwrap(), 2);
        // Free again, the pool takes work; a panicking job costs a 500, not the thread.
        assert!(matches!(
            pool.run(|_| panic!("boom")).await,
            Err(CredentialError::Bug(_))
        ));
        assert_eq!(pool.run(|_| 4).await.unwrap(), 4);
    }
}
