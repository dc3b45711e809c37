//! The inputs of messages v2, hand-picked: emoji in the reaction path (empty, whitespace,
//! control characters, NUL, too long, broken percent-encoding, invalid UTF-8), ids of other
//! chats' messages for `reply_to` and reactions, huge and ill-typed `mentions`, non-members,
//! a 21st emoji. Each gets its 4xx in the envelope, never a 5xx.

use reqwest::Method;
use serde_json::{json, Value};

use super::rawhttp::{check_raw, raw_exchange, raw_request};
use super::{expect_error, run_all, send_ok, Arena};

/// A reaction path with the emoji segment exactly as given (already percent-encoded).
fn reaction(chat: i64, message: i64, raw_emoji: &str) -> String {
    format!("/chats/{chat}/messages/{message}/reactions/{raw_emoji}")
}

#[tokio::test]
async fn hostile_emoji_in_the_reaction_path_are_422_or_404_never_5xx() {
    let arena = Arena::new().await;
    let (chat, message) = (arena.chat, arena.message);
    let four_bytes = "%F0%9F%98%80"; // 😀, 4 bytes of UTF-8
                                     // (segment, expected status): 404 where the path has no emoji segment at all.
    let cases: Vec<(String, u16)> = vec![
        (String::new(), 404),
        ("%20".into(), 422),
        ("a%20b".into(), 422),
        ("%0A".into(), 422),
        ("%0D%0A".into(), 422),
        ("%09".into(), 422),
        ("%00".into(), 422),
        ("%7F".into(), 422),
        ("%C2%85".into(), 422),    // NEL: a C1 control and whitespace
        ("%E2%80%A8".into(), 422), // LINE SEPARATOR
        ("%E3%80%80".into(), 422), // IDEOGRAPHIC SPACE
        (format!("{}a", four_bytes.repeat(8)), 422), // 33 bytes
        ("x".repeat(33), 422),
        ("x".repeat(5000), 422),
        ("%ZZ".into(), 422),
        ("%".into(), 422),
        ("%4".into(), 422),
        ("%%".into(), 422),
        ("%C3".into(), 422),          // a lone lead byte
        ("%FF%FE".into(), 422),       // never UTF-8
        ("%ED%A0%80".into(), 422),    // a surrogate
        ("%C0%AF".into(), 422),       // overlong '/'
        ("%F4%90%80%80".into(), 422), // past U+10FFFF
        (four_bytes.repeat(8), 204),  // 32 bytes: the most allowed
        ("x".repeat(32), 204),
        ("%2F".into(), 204), // an encoded slash is a one-byte emoji, not a path
        ("'%3B--".into(), 204),
        ("%E2%9D%A4%EF%B8%8F".into(), 204), // ❤️ with its variation selector
    ];
    let mut requests = Vec::new();
    for (segment, status) in cases {
        for method in [Method::PUT, Method::DELETE] {
            requests.push((method, segment.clone(), status));
        }
    }
    run_all(requests, |(method, segment, status)| {
        let arena = &arena;
        async move {
            let path = reaction(chat, message, &segment);
            let what = format!("{method} {path}");
            // Byte for byte: a client library would re-encode what it takes for an error.
            let exchange = raw_exchange(
                arena.app.addr,
                raw_request(method.as_str(), &path, Some(&arena.alice.token), ""),
                None,
            )
            .await;
            let responses = check_raw(&what, &exchange, true);
            let r = &responses[0];
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            assert_eq!(r.status, status, "{what}: {responses:?}");
            match status {
                422 => assert_eq!(body["errors"][0]["field"], "emoji", "{what}: {body}"),
                404 => assert_eq!(body["code"], "not_found", "{what}: {body}"),
                _ => {}
            }
        }
    })
    .await;
    // Without the segment's slash too.
    let r = send_ok(
        "PUT .../reactions",
        arena
            .http
            .put(arena.url(&format!("/chats/{chat}/messages/{message}/reactions")))
            .bearer_auth(&arena.alice.token),
    )
    .await;
    expect_error("PUT .../reactions", &r, 404, "not_found", &[]);
    arena.still_works("hostile emoji").await;
}

#[tokio::test]
async fn other_chats_messages_huge_and_ill_typed_mentions_and_a_21st_emoji_never_5xx() {
    let arena = Arena::new().await;
    let (alice, bob) = (&arena.alice, &arena.bob);
    let app = &arena.app;
    let chat = arena.chat;
    let stranger = app.user("stranger").await;
    let elsewhere_chat = app.group(&stranger, &[]).await;
    let elsewhere = app.send(&stranger, elsewhere_chat, "not yours").await["id"]
        .as_i64()
        .unwrap();
    let send = format!("/chats/{chat}/messages");
    let post = |body: Value| {
        send_ok(
            "send",
            arena
                .http
                .post(arena.url(&send))
                .bearer_auth(&alice.token)
                .json(&body),
        )
    };

    // reply_to: another chat's message, missing, edge ids, wrong types.
    for reply_to in [
        json!(elsewhere),
        json!(0),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!("x"),
        json!("1"),
        json!(1.5),
        json!([arena.message]),
        json!({"id": arena.message}),
        json!(true),
    ] {
        let r = post(json!({"text": "x", "reply_to": reply_to})).await;
        expect_error(
            &format!("reply_to {reply_to}"),
            &r,
            422,
            "validation_error",
            &["reply_to"],
        );
    }

    // mentions: too many (51, 10,000 as sent), non-members, odd ids, wrong types.
    let many: Vec<i64> = (1..=10_000).collect();
    for mentions in [
        json!(vec![bob.id; 51]),
        json!(many),
        json!([stranger.id]),
        json!([bob.id, 0, -1, i64::MAX]),
        json!("1"),
        json!(1),
        json!([1.5]),
        json!([null]),
        json!(null),
        json!([[bob.id]]),
        json!([bob.id.to_string()]),
        json!({"0": bob.id}),
        json!([u64::MAX]),
    ] {
        let r = post(json!({"text": "x", "mentions": mentions})).await;
        let what = format!(
            "mentions {}",
            &mentions.to_string()[..mentions.to_string().len().min(80)]
        );
        expect_error(&what, &r, 422, "validation_error", &["mentions"]);
    }
    // The same through an edit.
    let edit = format!("/chats/{chat}/messages/{}", arena.message);
    for body in [
        json!({"mentions": many}),
        json!({"mentions": [stranger.id]}),
        json!({"mentions": "1"}),
        json!({"mentions": [null]}),
        json!({}),
    ] {
        let r = send_ok(
            "edit",
            arena
                .http
                .patch(arena.url(&edit))
                .bearer_auth(&alice.token)
                .json(&body),
        )
        .await;
        assert_eq!(r.status, 422, "edit {body}: {r:?}");
    }

    // Reactions on another chat's message, through this chat's path or theirs: 404.
    for path in [
        reaction(chat, elsewhere, "%F0%9F%91%8D"),
        reaction(elsewhere_chat, elsewhere, "%F0%9F%91%8D"),
        reaction(chat, i64::MAX, "%F0%9F%91%8D"),
    ] {
        for method in [Method::PUT, Method::DELETE] {
            let what = format!("{method} {path}");
            let r = send_ok(
                &what,
                arena
                    .http
                    .request(method, arena.url(&path))
                    .bearer_auth(&alice.token),
            )
            .await;
            expect_error(&what, &r, 404, "not_found", &[]);
        }
    }

    // A 21st distinct emoji: 422 too_many_reactions naming `emoji`; bob's 20 go through.
    let message = app.send(alice, chat, "react").await["id"].as_i64().unwrap();
    for i in 0..20u32 {
        let emoji = char::from_u32(0x1F600 + i).unwrap().to_string();
        let path = reaction(chat, message, &super::gen::percent_encode(&emoji));
        let r = send_ok(
            &path,
            arena.http.put(arena.url(&path)).bearer_auth(&bob.token),
        )
        .await;
        assert_eq!(r.status, 204, "{path}: {r:?}");
    }
    let path = reaction(chat, message, "%F0%9F%A6%80");
    let r = send_ok(
        "21st",
        arena.http.put(arena.url(&path)).bearer_auth(&alice.token),
    )
    .await;
    expect_error("21st emoji", &r, 422, "too_many_reactions", &["emoji"]);
    arena.still_works("hostile v2 fields").await;
}
