//! The process's own resources under their standard Prometheus names, read from
//! `/proc/self` at scrape time (Linux only: elsewhere they are left out).

use super::counters::gauge;

/// `process_resident_memory_bytes`, `process_open_fds` and `process_max_fds`, each only if
/// it could be read.
pub fn render(out: &mut String) {
    if let Some(rss) = resident_bytes() {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        );
    }
    if let Some(open) = open_fds() {
        gauge(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            open,
        );
    }
    if let Some(max) = max_fds() {
        gauge(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

/// The second field of `/proc/self/statm` (resident pages) times the page size.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|page| pages * page)
}

/// Entries of `/proc/self/fd`, less the one this count opens to read it.
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft limit on open files (what `accept` runs into).
fn max_fds() -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_the_process_resources() {
        let mut out = String::new();
        super::render(&mut out);
        let value = |name: &str| -> u64 {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing: {out}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1 << 20);
        let open = value("process_open_fds");
        // Other tests run alongside and open files too: sanity only.
        assert!(open >= 3, "stdin, stdout, stderr at least");
        assert!(value("process_max_fds") >= open);
    }
}
