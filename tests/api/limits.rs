//! Rate limits across processes: the in-process budgets are shared evenly among the live
//! processes, which each hold a lease in `process_leases`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Leases renewed often, so the processes see each other within a test's waits.
const RENEW: Duration = Duration::from_millis(200);

async fn database(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Waits until `n` leases are live and each was renewed after the newest was taken, so every
/// process has counted all `n`.
async fn wait_for_leases(db: &tokio_postgres::Client, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let row = db
            .query_one(
                "SELECT count(*),
                        coalesce(bool_and(expires_at - $1::float8 * interval '1 second'
                                          > (SELECT max(started_at) FROM process_leases)
                                            + $2::float8 * interval '1 second'), false)
                 FROM process_leases WHERE expires_at > now()",
                &[
                    &(RENEW.as_secs_f64() * rtchat::testing::LEASE_TTL_RENEWALS as f64),
                    &RENEW.as_secs_f64(),
                ],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == n && row.get::<_, bool>(1) {
            // The count is stored right after the renewal that read it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        assert!(Instant::now() < deadline, "{n} leases never all counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_user_bursting_through_two_processes_gets_one_burst_in_total() {
    const BURST: f64 = 10.0;
    const RATE: f64 = 1.0;
    let limits = |c: &mut rtchat::config::Config| {
        c.rate_messages_burst = BURST;
        c.rate_messages_per_sec = RATE;
        c.lease_renew = RENEW;
    };
    let a = TestApp::spawn_with(limits).await;
    let b = TestApp::spawn_on(&a.database_url, limits).await;
    let db = database(&a.database_url).await;
    wait_for_leases(&db, 2).await;
    let user = a.user("bursty").await;
    let chat = a.group(&user, &[]).await;

    let started = Instant::now();
    let mut accepted = [0u32; 2];
    for i in 0..(4 * BURST as usize) {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app
            .post(
                &format!("/chats/{chat}/messages"),
                &user.token,
                json!({ "text": format!("m{i}") }),
            )
            .await;
        match r.status {
            201 => accepted[i % 2] += 1,
            _ => assert_error(&r, 429, "rate_limited"),
        }
    }
    // The refill during the burst is the only slack: a generous bound on the time taken,
    // not a timing assertion (a slow machine only widens it).
    let refill = (started.elapsed().as_secs_f64() * RATE).ceil() as u32;
    let total = accepted[0] + accepted[1];
    assert!(
        total <= BURST as u32 + refill,
        "{accepted:?} accepted through two processes, burst {BURST}, refill {refill}"
    );
    assert!(
        accepted.iter().all(|&n| n >= 1),
        "both processes accept their share: {accepted:?}"
    );

    // A clean shutdown gives the lease up at once.
    let mut b = b;
    b.stop().await;
    let live: i64 = db
        .query_one("SELECT count(*) FROM process_leases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1, "the stopped process still holds a lease");
}
