//! The delivery property: with concurrent senders in overlapping chats (sending, reacting,
//! taking reactions back and reading, at random) and receivers that drop and reconnect with
//! `since` at random points, every receiver sees seq 1..N exactly once, in order, and what it
//! saw equals `GET /events`, the message history and the reactions on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::support::*;
use crate::wsclient::WsClient;

/// The size of one run.
pub struct Load {
    pub users: usize,
    pub chats: usize,
    pub senders: usize,
    pub messages_per_sender: usize,
    pub seed: u64,
}

/// What a run did, for the closing note and the assertions' messages.
#[derive(Debug)]
pub struct Report {
    pub events_checked: usize,
    pub reconnects: usize,
    pub messages: usize,
    /// Reaction events checked against the histories' counts.
    pub reactions: usize,
    /// `read` events seen by members.
    pub reads: usize,
    pub elapsed: Duration,
}

/// The emoji the senders react with: few, so reactions pile up on the same ones.
const EMOJI: &[&str] = &["%F0%9F%91%8D", "%F0%9F%8E%89", "%E2%9D%A4%EF%B8%8F"];

/// Whether a request answered `server_busy` (a chat write that waited its bounded turn and
/// changed nothing, which a client retries).
fn busy(status: u16) -> bool {
    status == 503
}

/// Runs the property against one or more server processes sharing one database: senders and
/// receivers pick a process at random for every request and every reconnect.
pub async fn check_delivery(apps: &[&TestApp], load: Load) -> Report {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(load.seed);
    let app0 = apps[0];
    let mut users = Vec::new();
    for i in 0..load.users {
        users.push(app0.user(&format!("p{i}_")).await);
    }
    // Overlapping chats: each has its creator and about half the others.
    let mut chats: Vec<(i64, Vec<usize>)> = Vec::new();
    for c in 0..load.chats {
        let owner = c % load.users;
        let mut members: Vec<usize> = (0..load.users)
            .filter(|u| *u != owner && rng.gen_bool(0.5))
            .collect();
        members.push(owner);
        members.sort();
        let others: Vec<&TestUser> = members
            .iter()
            .filter(|u| **u != owner)
            .map(|u| &users[*u])
            .collect();
        let id = app0.group(&users[owner], &others).await;
        chats.push((id, members));
    }

    // Receivers: one per user, plus a second socket for user 0 (every socket gets everything).
    let (final_tx, final_rx) = watch::channel::<Option<HashMap<i64, i64>>>(None);
    let mut receivers = Vec::new();
    for (i, user) in users
        .iter()
        .enumerate()
        .chain(std::iter::once((0, &users[0])))
    {
        let addrs: Vec<_> = apps.iter().map(|a| a.addr).collect();
        let token = user.token.clone();
        let user_id = user.id;
        let mut final_rx = final_rx.clone();
        let seed = load.seed ^ ((i as u64 + 1) * 7919) ^ receivers.len() as u64;
        receivers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut seen: Vec<Value> = Vec::new();
            let mut reconnects = 0usize;
            loop {
                let pick = rng.gen_range(0..addrs.len());
                let since = seen.last().map(|f| f["seq"].as_i64().unwrap()).unwrap_or(0);
                let mut ws = WsClient::connect_to(addrs[pick], &token, Some(since)).await;
                let budget = rng.gen_range(1..25);
                let mut got = 0;
                loop {
                    let target = final_rx.borrow().as_ref().map(|f| f[&user_id]);
                    let last = seen.last().map(|f| f["seq"].as_i64().unwrap()).unwrap_or(0);
                    if target.is_some_and(|t| last >= t) {
                        return (user_id, seen, reconnects);
                    }
                    tokio::select! {
                        frame = ws.next_event() => {
                            let seq = frame["seq"].as_i64().unwrap();
                            assert_eq!(seq, last + 1, "user {user_id}: seq {seq} after {last}: {frame}");
                            seen.push(frame);
                            got += 1;
                        }
                        _ = final_rx.changed() => {}
                    }
                    if got >= budget {
                        reconnects += 1;
                        break; // drop the socket mid-stream and come back with since
                    }
                }
            }
        }));
    }

    // Senders: concurrent, random chats they belong to, random process, client ids; between
    // sends they react to, take back reactions from, and read random messages of their chats
    // (any sender's: `sent` holds every message id so far, by chat).
    let sent: Arc<Mutex<HashMap<i64, Vec<i64>>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..load.senders {
        let user_index = s % load.users;
        let user = users[user_index].clone();
        let my_chats: Vec<i64> = chats
            .iter()
            .filter(|(_, m)| m.contains(&user_index))
            .map(|(id, _)| *id)
            .collect();
        if my_chats.is_empty() {
            continue;
        }
        let bases: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
        let http = app0.http.clone();
        let count = load.messages_per_sender;
        let seed = load.seed.wrapping_mul(31).wrapping_add(s as u64);
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            for n in 0..count {
                let chat = my_chats[rng.gen_range(0..my_chats.len())];
                let base = &bases[rng.gen_range(0..bases.len())];
                let r = http
                    .post(format!("{base}/chats/{chat}/messages"))
                    .bearer_auth(&user.token)
                    .json(&json!({"text": format!("s{s} m{n}"), "client_id": format!("s{s}-{n}")}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 201, "send {s}/{n}");
                let id = r.json::<Value>().await.expect("a message")["id"]
                    .as_i64()
                    .unwrap();
                sent.lock().unwrap().entry(chat).or_default().push(id);

                // Another action on a random message of one of the sender's chats.
                let chat = my_chats[rng.gen_range(0..my_chats.len())];
                let Some(target) = sent
                    .lock()
                    .unwrap()
                    .get(&chat)
                    .map(|ids| ids[rng.gen_range(0..ids.len())])
                else {
                    continue;
                };
                let base = &bases[rng.gen_range(0..bases.len())];
                let emoji = EMOJI[rng.gen_range(0..EMOJI.len())];
                let reaction = format!("{base}/chats/{chat}/messages/{target}/reactions/{emoji}");
                let request = match rng.gen_range(0..10) {
                    0..=2 => http.put(reaction),
                    3 | 4 => http.delete(reaction),
                    5 | 6 => http
                        .post(format!("{base}/chats/{chat}/read"))
                        .json(&json!({ "message_id": target })),
                    _ => continue,
                };
                let request = request.bearer_auth(&user.token);
                let mut answered = false;
                for _ in 0..50 {
                    let r = request
                        .try_clone()
                        .expect("a request without a stream body")
                        .send()
                        .await
                        .expect("react or read");
                    if !busy(r.status().as_u16()) {
                        assert_eq!(r.status(), 204, "sender {s}, action after {n}");
                        answered = true;
                        break;
                    }
                }
                assert!(answered, "sender {s}, action after {n}: busy 50 times");
            }
        }));
    }
    for s in senders {
        tokio::time::timeout(Duration::from_secs(120), s)
            .await
            .expect("senders finish")
            .expect("sender ok");
    }

    // The truth: each user's full log over REST.
    let mut logs: HashMap<i64, Vec<Value>> = HashMap::new();
    for user in &users {
        let mut log = Vec::new();
        loop {
            let since = log
                .last()
                .map(|f: &Value| f["seq"].as_i64().unwrap())
                .unwrap_or(0);
            let r = app0
                .get(&format!("/events?since={since}&limit=100"), &user.token)
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            log.extend(r.body["events"].as_array().unwrap().iter().cloned());
            if r.body["has_more"] == false {
                break;
            }
        }
        logs.insert(user.id, log);
    }
    let finals: HashMap<i64, i64> = logs.iter().map(|(u, l)| (*u, l.len() as i64)).collect();
    final_tx.send(Some(finals)).unwrap();

    let mut report = Report {
        events_checked: 0,
        reconnects: 0,
        messages: 0,
        reactions: 0,
        reads: 0,
        elapsed: Duration::ZERO,
    };
    for r in receivers {
        let (user_id, seen, reconnects) = tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .expect("receivers catch up")
            .expect("receiver ok");
        let log = &logs[&user_id];
        let seqs: Vec<i64> = seen.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=log.len() as i64).collect::<Vec<_>>(),
            "user {user_id} saw every seq once, in order"
        );
        assert_eq!(
            &seen, log,
            "user {user_id}: the socket and GET /events agree"
        );
        report.events_checked += seen.len();
        report.reconnects += reconnects;
    }

    // The message history of each chat equals the new_message events its members saw.
    for (chat, members) in &chats {
        let member = &users[members[0]];
        let mut history = Vec::new();
        let mut after = 0;
        loop {
            let r = app0
                .get(
                    &format!("/chats/{chat}/messages?after={after}&limit=100"),
                    &member.token,
                )
                .await;
            let page = r.body["messages"].as_array().unwrap().clone();
            history.extend(page.iter().cloned());
            if r.body["has_more"] == false {
                break;
            }
            after = page.last().unwrap()["id"].as_i64().unwrap();
        }
        // What every member shares: the history without the caller's own `my_reactions`,
        // and without `reactions`, which moved on after each `new_message` (checked below
        // against the `reaction` events).
        let shared: Vec<Value> = history
            .iter()
            .map(|m| {
                let mut m = m.clone();
                let fields = m.as_object_mut().unwrap();
                assert!(
                    fields.remove("my_reactions").is_some(),
                    "GET carries my_reactions"
                );
                fields.insert("reactions".into(), json!([]));
                m
            })
            .collect();
        // The final count of each (message, emoji) in the history...
        let mut counts: HashMap<(i64, String), i64> = HashMap::new();
        for m in &history {
            for r in m["reactions"].as_array().unwrap() {
                let key = (
                    m["id"].as_i64().unwrap(),
                    r["emoji"].as_str().unwrap().to_string(),
                );
                counts.insert(key, r["count"].as_i64().unwrap());
            }
        }
        for m in members {
            let log = &logs[&users[*m].id];
            let seen: Vec<Value> = log
                .iter()
                .filter(|f| f["type"] == "new_message" && f["payload"]["chat_id"] == *chat)
                .map(|f| f["payload"].clone())
                .collect();
            assert_eq!(
                seen, shared,
                "chat {chat}: member {m}'s events match the history"
            );
            // ...is the count of its last `reaction` event every member saw, each event
            // moving the count by exactly one.
            let mut last: HashMap<(i64, String), i64> = HashMap::new();
            for f in log
                .iter()
                .filter(|f| f["type"] == "reaction" && f["payload"]["chat_id"] == *chat)
            {
                let p = &f["payload"];
                let key = (
                    p["message_id"].as_i64().unwrap(),
                    p["emoji"].as_str().unwrap().to_string(),
                );
                let count = p["count"].as_i64().unwrap();
                let before = last.get(&key).copied().unwrap_or(0);
                let step = if p["added"] == true { 1 } else { -1 };
                assert_eq!(count, before + step, "chat {chat}: member {m}: {f}");
                last.insert(key, count);
                report.reactions += 1;
            }
            last.retain(|_, count| *count > 0);
            assert_eq!(
                last, counts,
                "chat {chat}: member {m}'s reaction events end at the history's counts"
            );
            report.reads += log
                .iter()
                .filter(|f| f["type"] == "read" && f["payload"]["chat_id"] == *chat)
                .count();
        }
        report.messages += history.len();
    }
    assert_eq!(report.messages, load.senders * load.messages_per_sender);
    report.elapsed = started.elapsed();
    report
}

#[tokio::test]
async fn every_receiver_sees_every_seq_once_in_order_across_random_reconnects() {
    let app = TestApp::spawn().await;
    let report = check_delivery(
        &[&app],
        Load {
            users: 6,
            chats: 5,
            senders: 6,
            messages_per_sender: 60,
            seed: 0x5eed_0001,
        },
    )
    .await;
    eprintln!("delivery property, one process: {report:?}");
    assert!(
        report.reconnects > 20,
        "the run must actually reconnect: {report:?}"
    );
    assert!(
        report.reactions > 20 && report.reads > 20,
        "the run must actually react and read: {report:?}"
    );
}
