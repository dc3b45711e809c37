//! Group commit of sends (src/delivery/writers.rs, `rtchat_send_messages`): one batch
//! answers each of its sends as if it had been alone, in arrival order.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::support::*;

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::from_str(url)
        .expect("valid url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Every durable event of `user` over REST, as (seq, type, payload).
async fn events_of(app: &TestApp, user: &TestUser) -> Vec<(i64, String, Value)> {
    let r = app.get("/events?since=0&limit=100", &user.token).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().expect("seq"),
                e["type"].as_str().expect("type").to_string(),
                e["payload"].clone(),
            )
        })
        .collect()
}

/// One send of a batch: chat, sender, text, client_id, reply_to, mentions.
type Send<'a> = (i64, i64, &'a str, Option<&'a str>, Option<i64>, &'a [i64]);

#[tokio::test]
async fn one_batch_answers_every_kind_of_send_in_arrival_order() {
    // Arrange: a chat of a and b, a chat of c alone, an inactive chat of a, and one message
    // of a's with a client_id committed before the batch.
    let app = TestApp::spawn().await;
    let (a, b, c) = (
        app.user("a").await,
        app.user("b").await,
        app.user("c").await,
    );
    let ab = app.group(&a, &[&b]).await;
    let lonely = app.group(&c, &[]).await;
    let closed = app.group(&a, &[]).await;
    let r = app
        .patch(
            &format!("/chats/{closed}"),
            &a.token,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let earlier = app
        .post(
            &format!("/chats/{ab}/messages"),
            &a.token,
            json!({"text": "earlier", "client_id": "k-old"}),
        )
        .await;
    assert_eq!(earlier.status, 201, "{earlier:?}");
    let before_a = events_of(&app, &a).await.len() as i64;
    let before_b = events_of(&app, &b).await.len() as i64;

    // Act: one call with every case in it.
    let db = connect(&app.database_url).await;
    let old = earlier.body["id"].as_i64();
    let none: &[i64] = &[];
    let mut c_and_b = [c.id, b.id];
    c_and_b.sort();
    let (just_b, just_c) = ([b.id], [c.id]);
    #[rustfmt::skip]
    let sends: Vec<Send> = vec![
        (ab, a.id, "one", Some("k1"), None, none),          // 1 created
        (ab, a.id, "one again", Some("k1"), None, none),    // 2 repeat of 1, in the same batch
        (ab, b.id, "two", None, None, none),                // 3 created
        (lonely, a.id, "intruder", None, None, none),       // 4 not a member: not_found
        (i64::MAX, a.id, "nowhere", None, None, none),      // 5 no such chat: not_found
        (closed, a.id, "closed", None, None, none),         // 6 inactive
        (ab, a.id, "old again", Some("k-old"), None, none), // 7 repeat of the earlier message
        (ab, b.id, "three", Some("k1"), None, none),        // 8 created: another sender's k1
        (lonely, c.id, "alone", None, None, none),          // 9 created
        (ab, a.id, "reply", None, old, &just_b),            // 10 created: a reply mentioning b
        (ab, b.id, "bad reply", None, Some(i64::MAX), none), // 11 bad_reply_to
        (ab, a.id, "bad mention", None, None, &c_and_b),    // 12 bad_mentions: c is no member
        (ab, b.id, "k2 refused", Some("k2"), None, &just_c), // 13 bad_mentions
        (ab, b.id, "k2 fine", Some("k2"), None, none),      // 14 created: 13 was not created
    ];
    let chats: Vec<i64> = sends.iter().map(|s| s.0).collect();
    let senders: Vec<i64> = sends.iter().map(|s| s.1).collect();
    let texts: Vec<&str> = sends.iter().map(|s| s.2).collect();
    let client_ids: Vec<Option<&str>> = sends.iter().map(|s| s.3).collect();
    let reply_tos: Vec<Option<i64>> = sends.iter().map(|s| s.4).collect();
    let counts: Vec<i32> = sends.iter().map(|s| s.5.len() as i32).collect();
    let mentions: Vec<i64> = sends.iter().flat_map(|s| s.5.iter().copied()).collect();
    let rows = db
        .query(
            "SELECT ord, status, message_id, users, seqs, bad_mentions
             FROM rtchat_send_messages($1, $2, $3, $4, $5, $6, $7)",
            &[
                &chats,
                &senders,
                &texts,
                &client_ids,
                &reply_tos,
                &counts,
                &mentions,
            ],
        )
        .await
        .expect("the batch runs");

    // Assert: one row per send, in order, each with its own outcome.
    let got: Vec<(i32, String, Option<i64>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let statuses: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "created",
            "repeat",
            "created",
            "not_found",
            "not_found",
            "inactive",
            "repeat",
            "created",
            "created",
            "created",
            "bad_reply_to",
            "bad_mentions",
            "bad_mentions",
            "created"
        ],
        "{got:?}"
    );
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (1..=14).collect::<Vec<_>>()
    );
    let bad = |ord: usize| rows[ord - 1].get::<_, Option<Vec<i64>>>(5);
    assert_eq!(bad(12), Some(vec![c.id]), "the ids that are not members");
    assert_eq!(bad(13), Some(vec![c.id]));
    assert_eq!(bad(10), None);
    let id = |ord: usize| got[ord - 1].2.expect("an id");
    assert_eq!(id(2), id(1), "a repeat inside the batch answers the first");
    assert_eq!(Some(id(7)), earlier.body["id"].as_i64());
    assert!(
        id(1) < id(3) && id(3) < id(8),
        "ids follow arrival order: {got:?}"
    );
    for ord in [4, 5, 6, 11, 12, 13] {
        assert_eq!(got[ord - 1].2, None, "{got:?}");
    }
    // Deliveries: members in ascending id order, each member's seqs consecutive after what
    // they had, in arrival order.
    let deliveries =
        |ord: usize| -> (Vec<i64>, Vec<i64>) { (rows[ord - 1].get(3), rows[ord - 1].get(4)) };
    let mut members = vec![a.id, b.id];
    members.sort();
    let seq_of = |user: i64, k: i64| {
        if user == a.id {
            before_a + k
        } else {
            before_b + k
        }
    };
    for (k, ord) in [1usize, 3, 8, 10, 14].into_iter().enumerate() {
        let (users, seqs) = deliveries(ord);
        assert_eq!(users, members, "send {ord}");
        let want: Vec<i64> = users.iter().map(|&u| seq_of(u, k as i64 + 1)).collect();
        assert_eq!(seqs, want, "send {ord}");
    }
    assert_eq!(deliveries(9), (vec![c.id], vec![2])); // c's create_chat was seq 1

    // The log agrees: a and b each got the five new messages, in id order, and nothing for
    // the repeats or the refused sends; the reply carries its reply_to and mentions.
    for user in [&a, &b] {
        let events = events_of(&app, user).await;
        let new: Vec<&(i64, String, Value)> = events
            .iter()
            .skip(if user.id == a.id { before_a } else { before_b } as usize)
            .collect();
        let texts: Vec<&str> = new
            .iter()
            .map(|(_, kind, p)| {
                assert_eq!(kind, "new_message");
                p["text"].as_str().expect("text")
            })
            .collect();
        assert_eq!(
            texts,
            ["one", "two", "three", "reply", "k2 fine"],
            "user {}",
            user.id
        );
        let reply = &new[3].2;
        assert_eq!(
            (&reply["reply_to"], &reply["mentions"]),
            (&json!(old), &json!([b.id]))
        );
        let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_burst_of_sends_gets_each_its_own_answer_and_every_member_every_message_once() {
    burst_of_sends(1).await;
}

#[tokio::test]
async fn with_two_writers_too() {
    // Chats split among the writers; users shared by chats of both (u1, u2 and u3 are in
    // chats 0 to 2).
    burst_of_sends(2).await;
}

async fn burst_of_sends(writers: usize) {
    // Arrange: four chats of three members, one of them inactive, and an outsider.
    let app = TestApp::spawn_with(|c| c.send_writers = writers).await;
    let mut users = Vec::new();
    for name in ["u0", "u1", "u2", "u3", "u4", "u5"] {
        users.push(app.user(name).await);
    }
    let outsider = app.user("outsider").await;
    let mut chats = Vec::new();
    for i in 0..4 {
        let owner = &users[i];
        let others = [&users[(i + 1) % 6], &users[(i + 2) % 6]];
        chats.push((
            app.group(owner, &others).await,
            [i, (i + 1) % 6, (i + 2) % 6],
        ));
    }
    let (closed, closed_members) = chats[3];
    let r = app
        .patch(
            &format!("/chats/{closed}"),
            &users[closed_members[0]].token,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    // Act: 120 sends at once: members of the active chats (some with a client_id used
    // twice), the outsider, and members of the inactive chat.
    let mut requests = Vec::new();
    for n in 0..120usize {
        let (chat, members) = chats[n % 4];
        let (user, expect) = match n % 10 {
            9 => (&outsider, 404),
            _ if chat == closed => (&users[members[n % 40 % 3]], 403),
            _ => (&users[members[n % 40 % 3]], 201),
        };
        // Sends n, n+40 and n+80 go from one member to one chat with one client_id: one
        // creates, two repeat.
        let client_id = format!("burst-{}-{}", user.id, n % 40);
        requests.push((chat, user, expect, client_id, n));
    }
    let client = &app;
    let replies =
        futures_util::future::join_all(requests.iter().map(|(chat, user, _, cid, n)| async move {
            let path = format!("/chats/{chat}/messages");
            let body = json!({"text": format!("m{n}"), "client_id": cid});
            client.post(&path, &user.token, body).await
        }))
        .await;

    // Assert: each request its own answer; duplicates of a client_id: one 201, the rest 200
    // with the same message.
    let mut by_client_id: HashMap<(i64, i64, &str), Vec<&Reply>> = HashMap::new();
    for ((chat, user, expect, cid, _), reply) in requests.iter().zip(&replies) {
        match expect {
            201 => {
                assert!(reply.status == 201 || reply.status == 200, "{reply:?}");
                assert_eq!(reply.body["chat_id"], *chat);
                assert_eq!(reply.body["sender_id"], user.id);
                by_client_id
                    .entry((*chat, user.id, cid.as_str()))
                    .or_default()
                    .push(reply);
            }
            status => assert_eq!(reply.status, *status, "{reply:?}"),
        }
    }
    let mut created = HashMap::new();
    for ((chat, _, _), group) in &by_client_id {
        let firsts = group.iter().filter(|r| r.status == 201).count();
        assert_eq!(firsts, 1, "{group:?}");
        assert!(group.iter().all(|r| r.body["id"] == group[0].body["id"]));
        created
            .entry(*chat)
            .or_insert_with(Vec::new)
            .push(group[0].body["id"].as_i64().expect("id"));
    }
    // Every member's log: consecutive seqs, each created message of their chats exactly once,
    // and a chat's messages in id order.
    for (u, user) in users.iter().enumerate() {
        let events = events_of(&app, user).await;
        let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
        for (chat, members) in &chats[..3] {
            let mut got: Vec<i64> = events
                .iter()
                .filter(|(_, kind, p)| kind == "new_message" && p["chat_id"] == *chat)
                .map(|(_, _, p)| p["id"].as_i64().expect("id"))
                .collect();
            if !members.contains(&u) {
                assert!(got.is_empty(), "user {u} is not in chat {chat}");
                continue;
            }
            assert!(got.windows(2).all(|w| w[0] < w[1]), "in id order: {got:?}");
            got.sort();
            let mut want = created[chat].clone();
            want.sort();
            assert_eq!(got, want, "user {u}, chat {chat}");
        }
    }
}

#[tokio::test]
async fn a_send_that_fails_its_batch_fails_alone() {
    // Arrange: a database fault that only one text triggers (no request can cause one by
    // its content today; this stands in for whatever bug might).
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let chat = app.group(&a, &[]).await;
    let db = connect(&app.database_url).await;
    db.batch_execute(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.text = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison();",
    )
    .await
    .expect("install the fault");

    // Act: the poisoned send among 30 good ones, all at once, so they share batches.
    let path = format!("/chats/{chat}/messages");
    let texts: Vec<String> = (0..31)
        .map(|i| {
            if i == 15 {
                "poison".into()
            } else {
                format!("good {i}")
            }
        })
        .collect();
    let client = &app;
    let replies = futures_util::future::join_all(texts.iter().map(|text| {
        let path = &path;
        let token = &a.token;
        async move { client.post(path, token, json!({ "text": text })).await }
    }))
    .await;

    // Assert: the good ones are all sent, once each; the poisoned one is a 500.
    for (text, reply) in texts.iter().zip(&replies) {
        if text == "poison" {
            assert_error(reply, 500, "internal_error");
        } else {
            assert_eq!(reply.status, 201, "{text}: {reply:?}");
        }
    }
    let events = events_of(&app, &a).await;
    let mut sent: Vec<&str> = events
        .iter()
        .filter(|(_, kind, _)| kind == "new_message")
        .map(|(_, _, p)| p["text"].as_str().expect("text"))
        .collect();
    sent.sort();
    let mut want: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "poison")
        .collect();
    want.sort();
    assert_eq!(sent, want);
}
