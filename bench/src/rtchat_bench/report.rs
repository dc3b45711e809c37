//! What a run reports: one row per measured case, printed as a markdown table and written as
//! JSON together with the machine, the git commit and the settings; and the probes that read
//! the server's memory and CPU from `/proc`.

use std::fs;
use std::path::Path;
use std::process::Command;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// One measured case.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// What varies between the scenario's rows (chat size, rate, ...).
    pub case: String,
    /// Operations per second (messages persisted, deliveries, requests).
    pub throughput: Option<f64>,
    /// What `throughput` counts.
    pub unit: String,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub lost: u64,
    pub duplicated: u64,
    pub notes: String,
    /// Everything else measured, by name.
    pub metrics: Map<String, Value>,
}

impl Row {
    pub fn new(scenario: &str, case: impl Into<String>) -> Row {
        Row {
            scenario: scenario.into(),
            case: case.into(),
            throughput: None,
            unit: String::new(),
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            lost: 0,
            duplicated: 0,
            notes: String::new(),
            metrics: Map::new(),
        }
    }

    pub fn latency(mut self, h: &Histogram<u64>) -> Row {
        if !h.is_empty() {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            self.p50_ms = Some(ms(0.5));
            self.p99_ms = Some(ms(0.99));
            self.p999_ms = Some(ms(0.999));
            self.metrics.insert("samples".into(), json!(h.len()));
            self.metrics
                .insert("max_ms".into(), json!(h.max() as f64 / 1000.0));
        }
        self
    }

    pub fn metric(mut self, name: &str, value: impl Serialize) -> Row {
        self.metrics.insert(
            name.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn note(mut self, note: impl AsRef<str>) -> Row {
        if !self.notes.is_empty() {
            self.notes.push_str("; ");
        }
        self.notes.push_str(note.as_ref());
        self
    }
}

/// The markdown table of `rows`.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | case | throughput | p50 ms | p99 ms | p99.9 ms | lost | dup | notes |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
    for r in rows {
        let throughput = r
            .throughput
            .map(|t| format!("{} {}", thousands(t), r.unit))
            .unwrap_or_else(|| "–".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.case,
            throughput,
            ms(r.p50_ms),
            ms(r.p99_ms),
            ms(r.p999_ms),
            r.lost,
            r.duplicated,
            r.notes
        ));
    }
    out
}

/// `12345.6` as `12,346`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The machine: cores, memory, CPU model, kernel.
pub fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let mem_kb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| field_kb(&m, "MemTotal:"));
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_mb": mem_kb.map(|k| k / 1024),
        "cpu_model": model,
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
    })
}

/// The commit of the working tree, with `-dirty` if it has changes.
pub fn git_commit() -> Option<String> {
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        commit.push_str("-dirty");
    }
    Some(commit)
}

/// The server's `RTCHAT_*` settings, read from its environment (never the secrets).
pub fn server_settings(pid: i32) -> Map<String, Value> {
    let mut out = Map::new();
    if let Ok(raw) = fs::read(format!("/proc/{pid}/environ")) {
        for entry in raw.split(|b| *b == 0) {
            let entry = String::from_utf8_lossy(entry);
            if let Some((k, v)) = entry.split_once('=') {
                if k.starts_with("RTCHAT_") {
                    out.insert(k.into(), json!(v));
                }
            }
        }
    }
    out
}

/// The full report.
pub fn document(args: &[String], server_pids: &[i32], rows: &[Row]) -> Value {
    let settings: Vec<Value> = server_pids
        .iter()
        .map(|pid| json!({"pid": pid, "env": server_settings(*pid)}))
        .collect();
    json!({
        "tool": "rtchat-bench",
        "machine": machine(),
        "git_commit": git_commit(),
        "generated_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "settings": {
            "args": args,
            "servers": settings,
        },
        "rows": rows,
    })
}

pub fn write_json(path: &Path, doc: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).expect("JSON values serialise");
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn field_kb(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident memory of a process in KiB.
pub fn rss_kb(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_kb(&status, "VmRSS:")
}

/// The summed RSS of `pids` in KiB (0 when none is readable).
pub fn total_rss_kb(pids: &[i32]) -> u64 {
    pids.iter().filter_map(|p| rss_kb(*p)).sum()
}

/// CPU time (user + system) of one process, in seconds.
fn cpu_secs(pid: i32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / ticks)
}

fn parent(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `pid` and its children (PostgreSQL's backends are children of the postmaster).
fn with_children(pid: i32) -> Vec<i32> {
    let mut pids = vec![pid];
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                if parent(child) == Some(pid) {
                    pids.push(child);
                }
            }
        }
    }
    pids
}

/// Reads CPU seconds of the servers, of PostgreSQL (postmaster and backends) and of this
/// generator, to turn a run into CPU per operation.
#[derive(Clone)]
pub struct CpuProbe {
    pub servers: Vec<i32>,
    pub postgres: Option<i32>,
}

/// CPU seconds at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSample {
    pub server: f64,
    pub postgres: f64,
    pub generator: f64,
}

impl CpuProbe {
    pub fn sample(&self) -> CpuSample {
        CpuSample {
            server: self.servers.iter().filter_map(|p| cpu_secs(*p)).sum(),
            // Backends that exited during the run take their CPU with them: PostgreSQL's
            // share is a lower bound when connections churn (the pools here keep theirs).
            postgres: self
                .postgres
                .map(|p| with_children(p).iter().filter_map(|c| cpu_secs(*c)).sum())
                .unwrap_or(0.0),
            generator: cpu_secs(std::process::id() as i32).unwrap_or(0.0),
        }
    }

    /// Microseconds of CPU per operation between two samples, as metrics.
    pub fn per_op(&self, before: CpuSample, after: CpuSample, ops: f64) -> Value {
        let per = |a: f64, b: f64| {
            if ops > 0.0 {
                Some(((b - a) * 1e6 / ops * 10.0).round() / 10.0)
            } else {
                None
            }
        };
        json!({
            "server_us": if self.servers.is_empty() { None } else { per(before.server, after.server) },
            "postgres_us": self.postgres.and_then(|_| per(before.postgres, after.postgres)),
            "generator_us": per(before.generator, after.generator),
            "server_cpu_s": after.server - before.server,
            "postgres_cpu_s": after.postgres - before.postgres,
            "generator_cpu_s": after.generator - before.generator,
        })
    }
}
