//! The embedded PostgreSQL: with no `DATABASE_URL`, rtchat runs a private cluster under
//! `RTCHAT_DATA_DIR/postgres`, reachable only through a Unix socket in that directory.
//! The test harness uses the same code for its throwaway cluster.
//!
//! PostgreSQL refuses to run as root, and CI and containers run as root: then the cluster
//! runs as the `postgres` user, and the directory is handed to that user. The server process
//! is our child, stopped when we stop. On Linux it also gets a parent-death signal, so it
//! never outlives us, even on SIGKILL; other Unix systems have no such signal, so there a
//! killed rtchat leaves it running, and the next start reports its lock file (stop it by
//! hand: `kill -INT` the pid on the first line of `postmaster.pid`).

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long PostgreSQL may take to start or to stop before we give up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket "port": it only names the socket file, as the cluster listens on no TCP port.
const PORT: u16 = 5432;

/// initdb's locale: byte-order collation with UTF-8 character classes (so `lower()` folds
/// non-ASCII emails too). macOS has no `C.UTF-8` locale; `C` with a `UTF-8` ctype is the same.
#[cfg(not(target_os = "macos"))]
const LOCALE: &[&str] = &["--locale=C.UTF-8"];
#[cfg(target_os = "macos")]
const LOCALE: &[&str] = &["--locale=C", "--lc-ctype=UTF-8"];

/// A running private PostgreSQL.
pub struct EmbeddedPostgres {
    pid: i32,
    data_dir: PathBuf,
    /// Receives once the server process has exited (a Mutex makes the handle `Sync`).
    exited: std::sync::Mutex<mpsc::Receiver<()>>,
}

/// The user and group the cluster runs as, when we are root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl EmbeddedPostgres {
    /// Creates the cluster in `data_dir` if it is empty, starts it and waits until it accepts
    /// connections. `settings` are extra `-c name=value` server settings.
    pub fn start(data_dir: &Path, settings: &[(&str, &str)]) -> Result<EmbeddedPostgres, String> {
        let bin = find_bin_dir().ok_or_else(no_binaries_help)?;
        let run_as = run_as()?;
        fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", data_dir.display()))?;
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot chmod {}: {e}", data_dir.display()))?;
        if let Some(who) = run_as {
            chown_tree(&data_dir, who)?;
        }

        if !data_dir.join("PG_VERSION").exists() {
            let output = command(&bin.join("initdb"), run_as)
                .args(["-D"])
                .arg(&data_dir)
                .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
                .args(LOCALE)
                .output()
                .map_err(|e| format!("cannot run initdb: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "initdb failed in {}: {}",
                    data_dir.display(),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }

        let log_path = data_dir.with_extension("log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let mut cmd = command(&bin.join("postgres"), run_as);
        cmd.arg("-D")
            .arg(&data_dir)
            .args(["-c", "listen_addresses="])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data_dir.display()))
            .arg("-c")
            .arg(format!("port={PORT}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
        // The parent-death signal is set after any setuid (a uid change clears it).
        #[cfg(target_os = "linux")]
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }

        // The parent-death signal fires when the *thread* that forked exits, so the fork
        // happens on a thread that lives exactly as long as the server process.
        let (started_tx, started_rx) = mpsc::channel();
        let (exited_tx, exited_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("embedded-postgres".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = started_tx.send(Ok(child.id() as i32));
                    let _ = child.wait();
                    let _ = exited_tx.send(());
                }
                Err(e) => {
                    let _ = started_tx.send(Err(format!("cannot start postgres: {e}")));
                }
            })
            .map_err(|e| e.to_string())?;
        let pid = started_rx.recv().map_err(|e| e.to_string())??;

        let pg = EmbeddedPostgres {
            pid,
            data_dir,
            exited: std::sync::Mutex::new(exited_rx),
        };
        pg.wait_ready(&log_path)?;
        Ok(pg)
    }

    /// A connection string for `tokio_postgres::Config::from_str` (database `postgres`).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection string for the given database of this cluster.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname={database}",
            self.data_dir.display()
        )
    }

    fn wait_ready(&self, log_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.data_dir.join("postmaster.pid");
        loop {
            if self
                .exited
                .lock()
                .map(|rx| rx.try_recv().is_ok())
                .unwrap_or(true)
            {
                let mut log = String::new();
                let _ = fs::File::open(log_path).and_then(|mut f| f.read_to_string(&mut log));
                let tail: String = log.lines().rev().take(10).collect::<Vec<_>>().join("\n");
                return Err(format!(
                    "postgres exited during start-up; its log ends:\n{tail}"
                ));
            }
            // postmaster.pid's 8th line is the server's status, "ready" once it takes connections.
            if let Ok(text) = fs::read_to_string(&pid_file) {
                if text.lines().nth(7).map(str::trim) == Some("ready") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("postgres did not start within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown: disconnects clients, then waits for the server to exit.
    pub fn stop(&self) {
        // SAFETY: sending a signal to our own child's pid.
        unsafe {
            libc::kill(self.pid, libc::SIGINT);
        }
        if let Ok(rx) = self.exited.lock() {
            let _ = rx.recv_timeout(STOP_TIMEOUT);
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn command(program: &Path, run_as: Option<RunAs>) -> Command {
    let mut cmd = Command::new(program);
    if let Some(who) = run_as {
        // std drops root's supplementary groups before setuid; pre_exec hooks run after it.
        cmd.uid(who.uid).gid(who.gid);
        cmd.env("HOME", "/tmp");
    }
    cmd
}

/// When we are root, the `postgres` user to run the cluster as.
fn run_as() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL in a literal");
    // SAFETY: getpwnam returns NULL or a pointer to static storage that we read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "rtchat runs as root and PostgreSQL refuses to: create a `postgres` user \
                    (`useradd --system postgres`), run rtchat as another user, or set DATABASE_URL"
                .into(),
        );
    }
    // SAFETY: pw is non-null and points at a valid passwd entry.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn chown_tree(path: &Path, who: RunAs) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid))
        .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).map_err(|e| e.to_string())? {
            chown_tree(&entry.map_err(|e| e.to_string())?.path(), who)?;
        }
    }
    Ok(())
}

/// PostgreSQL's binaries: `initdb` on PATH, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn no_binaries_help() -> String {
    "No DATABASE_URL is set, so rtchat wanted to start its embedded PostgreSQL, but it found no \
     PostgreSQL server binaries (`initdb` and `postgres`) on PATH or in /usr/lib/postgresql/*/bin. \
     Either install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install \
     postgresql@15` and put its bin/ on PATH), or point rtchat at a running server with \
     DATABASE_URL=postgres://user:password@host:5432/dbname."
        .into()
}
