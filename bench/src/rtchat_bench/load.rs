//! REST load: message sends (`POST /chats/{id}/messages`) and authenticated GETs, either
//! open-loop (a fixed rate; latency measured from each request's *intended* send time, so a
//! stalled server is not hidden by the generator waiting for it — no coordinated omission)
//! or closed-loop (N connections back to back: the maximum).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::json;
use tokio::sync::{mpsc, Mutex};

use super::net::{HttpConn, SourceIps, Target};
use super::setup::{to_bytes, Chat};
use super::socket::{message_text, now_us, Latency};

/// How a load runs.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many requests per second, spread evenly.
    Open { rate: f64 },
    /// Every connection sends its next request as soon as the last one was answered.
    Closed,
}

/// What a load does per request.
#[derive(Clone)]
pub enum Work {
    /// Send a message into the chats, round-robin; each send from the next member. `pad`
    /// characters are appended to the text (bigger frames).
    Send { chats: Arc<Vec<Chat>>, pad: usize },
    /// GET `path` with the token of the next user; `expect` counts that status as success
    /// instead of 2xx (e.g. 422 from `/users/0`: authenticated, but no database work).
    Get {
        path: String,
        tokens: Arc<Vec<String>>,
        expect: Option<u16>,
    },
}

/// The outcome of a load.
pub struct LoadResult {
    /// Requests answered 2xx.
    pub ok: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Other non-2xx answers.
    pub bad_status: u64,
    /// Transport errors and timeouts (for a send: the outcome is unknown).
    pub failed: u64,
    /// Requests dropped unsent because they were already over 2 s late at the end (open
    /// loop: the server could not keep up with the rate).
    pub not_started: u64,
    /// Latency of 2xx answers, microseconds.
    pub latency: Histogram<u64>,
    /// Seconds from the first intended send to the last answer.
    pub elapsed: f64,
    /// Per chat: sends answered 201 (the messages its members must receive).
    pub acked: Vec<u64>,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.max(1e-9)
    }
}

struct Job {
    n: u64,
    intended_us: u64,
}

struct Counters {
    ok: AtomicU64,
    rate_limited: AtomicU64,
    bad_status: AtomicU64,
    failed: AtomicU64,
    acked: Vec<AtomicU64>,
    last_done_us: AtomicU64,
    skipped: AtomicU64,
}

/// A request due this long after the end of the run is dropped, not sent.
const LATE_LIMIT_US: u64 = 2_000_000;

/// Runs `work` against `targets` (connections spread round-robin) for `duration`.
pub async fn run(
    targets: &[Target],
    sources: &Arc<SourceIps>,
    connections: usize,
    pace: Pace,
    duration: Duration,
    work: Work,
    run_tag: &str,
) -> Result<LoadResult, String> {
    let n_chats = match &work {
        Work::Send { chats, .. } => chats.len(),
        Work::Get { .. } => 0,
    };
    let counters = Arc::new(Counters {
        ok: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        bad_status: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        acked: (0..n_chats).map(|_| AtomicU64::new(0)).collect(),
        last_done_us: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
    });
    let latency = Arc::new(Latency::new());

    // Open every connection first: connecting is not what is measured.
    let mut conns = Vec::with_capacity(connections);
    for i in 0..connections {
        conns.push(HttpConn::connect(&targets[i % targets.len()], sources.pick()).await?);
    }

    let start_us = now_us() + 20_000;
    let end_us = start_us + duration.as_micros() as u64;
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let next_n = Arc::new(AtomicU64::new(0));
    let tag: Arc<str> = run_tag.into();

    let mut workers = Vec::with_capacity(connections);
    for (i, conn) in conns.into_iter().enumerate() {
        let target = targets[i % targets.len()].clone();
        let rx = rx.clone();
        let work = work.clone();
        let counters = counters.clone();
        let latency = latency.clone();
        let next_n = next_n.clone();
        let tag = tag.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = conn;
            loop {
                let job = match pace {
                    Pace::Open { .. } => match rx.lock().await.recv().await {
                        Some(job) => job,
                        None => break,
                    },
                    Pace::Closed => {
                        let now = now_us();
                        if now < start_us {
                            tokio::time::sleep(Duration::from_micros(start_us - now)).await;
                        }
                        if now_us() >= end_us {
                            break;
                        }
                        Job {
                            n: next_n.fetch_add(1, Ordering::Relaxed),
                            intended_us: now_us(),
                        }
                    }
                };
                if now_us() > end_us + LATE_LIMIT_US {
                    // Hopelessly late: the server is saturated; do not pile on.
                    counters.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if !conn.is_usable() {
                    match HttpConn::connect(&target, None).await {
                        Ok(c) => conn = c,
                        Err(_) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                }
                one(&mut conn, &work, &job, &tag, &counters, &latency, i).await;
            }
        }));
    }
    if let Pace::Open { rate } = pace {
        let interval_us = 1e6 / rate.max(0.001);
        let total = (duration.as_secs_f64() * rate).round() as u64;
        let mut n = 0u64;
        while n < total {
            let due = start_us + (n as f64 * interval_us) as u64;
            let now = now_us();
            if due > now {
                tokio::time::sleep(Duration::from_micros(due - now)).await;
            }
            let now = now_us();
            // Everything due by now goes out in one burst (timer resolution is ~1 ms).
            while n < total && start_us + (n as f64 * interval_us) as u64 <= now {
                let intended_us = start_us + (n as f64 * interval_us) as u64;
                if tx.send(Job { n, intended_us }).is_err() {
                    break;
                }
                n += 1;
            }
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let last = counters
        .last_done_us
        .load(Ordering::Relaxed)
        .max(start_us + 1);
    Ok(LoadResult {
        ok: counters.ok.load(Ordering::Relaxed),
        rate_limited: counters.rate_limited.load(Ordering::Relaxed),
        bad_status: counters.bad_status.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        not_started: counters.skipped.load(Ordering::Relaxed),
        latency: latency.merged(),
        elapsed: (last - start_us) as f64 / 1e6,
        acked: counters
            .acked
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect(),
    })
}

async fn one(
    conn: &mut HttpConn,
    work: &Work,
    job: &Job,
    tag: &str,
    counters: &Counters,
    latency: &Latency,
    worker: usize,
) {
    let expect = match work {
        Work::Get { expect, .. } => *expect,
        Work::Send { .. } => None,
    };
    let (reply, chat_index) = match work {
        Work::Send { chats, pad } => {
            let index = (job.n % chats.len() as u64) as usize;
            let chat = &chats[index];
            let round = job.n / chats.len() as u64;
            let sender = &chat.members[(round % chat.members.len() as u64) as usize];
            let body = json!({
                "text": message_text(job.intended_us, *pad),
                "client_id": format!("{tag}-{}", job.n),
            });
            let path = format!("/chats/{}/messages", chat.id);
            let reply = conn
                .call(
                    Method::POST,
                    &path,
                    Some(&sender.token),
                    Some(to_bytes(&body)),
                )
                .await;
            (reply, Some(index))
        }
        Work::Get { path, tokens, .. } => {
            let token = &tokens[(job.n % tokens.len() as u64) as usize];
            (
                conn.call(Method::GET, path, Some(token), None::<Bytes>)
                    .await,
                None,
            )
        }
    };
    let done = now_us();
    counters.last_done_us.fetch_max(done, Ordering::Relaxed);
    match reply {
        Ok(r) if expect.map_or((200..300).contains(&r.status), |e| e == r.status) => {
            counters.ok.fetch_add(1, Ordering::Relaxed);
            latency.record(worker, done.saturating_sub(job.intended_us));
            if let (Some(i), 201) = (chat_index, r.status) {
                counters.acked[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(r) if r.status == 429 => {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {
            counters.bad_status.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
