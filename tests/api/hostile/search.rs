//! The v2 read-side inputs by hand: `q` built to be tsquery or LIKE syntax, ids of other
//! people's chats, and cursors and page sizes of every wrong kind. Every answer is a 200 or
//! a 4xx in the envelope, never a 500 (the random query strings are in `requests.rs`).

use serde_json::json;

use super::{expect_error, run_all, send_ok, Arena};

/// `q`s that would be syntax to `to_tsquery`, `LIKE` or SQL if passed through; with the
/// answer each must get (200: it has words, which are searched as words).
const HOSTILE_Q: &[(&str, u16)] = &[
    ("%", 422),
    ("_", 422),
    ("&", 422),
    ("|", 422),
    ("!", 422),
    (":*", 422),
    ("'", 422),
    ("\"", 422),
    ("\\", 422),
    ("(", 422),
    (")", 422),
    ("<->", 422),
    ("<2>", 200),
    ("%_&|!:*'\"\\()<->", 422),
    ("a & b", 200),
    ("a | b", 200),
    ("!a", 200),
    ("a:*", 200),
    ("a:* b:A", 200),
    ("'a' & 'b'", 200),
    ("a' | 'b", 200),
    ("a\\' b", 200),
    ("(a | b) & !c", 200),
    ("a <-> b", 200),
    ("a <1> b", 200),
    ("first%", 200),
    ("fir_t", 200),
    ("'; DROP TABLE messages; --", 200),
    ("\u{0}a", 200),
    ("a\u{0}", 200),
    ("\u{7f}\u{1b}[31m", 200),
    ("😀", 422),
    ("a😀b", 200),
    ("\u{200b}", 422),
    ("ß ǅ İ", 200),
    ("٣٤ ½ ²", 200),
    ("漢字 かな", 200),
    ("e\u{301}", 200),
];

#[tokio::test]
async fn search_q_is_never_query_syntax_and_never_a_500() {
    let arena = Arena::new().await;
    let mut cases: Vec<(String, u16)> = HOSTILE_Q
        .iter()
        .map(|(q, status)| (q.to_string(), *status))
        .collect();
    // Around the bounds: 200 characters of one word, 201, and 10 and 11 words of syntax.
    cases.push(("é".repeat(200), 200));
    cases.push(("é".repeat(201), 422));
    cases.push(("a&".repeat(10), 200));
    cases.push(("a&".repeat(11), 422));
    cases.push((":*".repeat(100), 422));
    run_all(cases, |(q, status)| {
        let arena = &arena;
        async move {
            let what = format!("GET /search/messages q={q:?}");
            let url = reqwest::Url::parse_with_params(
                &arena.url("/search/messages"),
                &[("q", q.as_str())],
            )
            .expect("a URL");
            let r = send_ok(&what, arena.http.get(url).bearer_auth(&arena.alice.token)).await;
            if status == 422 {
                expect_error(&what, &r, 422, "validation_error", &["q"]);
            } else {
                assert_eq!(r.status, 200, "{what}: {r:?}");
                assert!(r.body["messages"].is_array(), "{what}: {r:?}");
            }
        }
    })
    .await;
    // The words of a hostile q are still found as words.
    let r = arena
        .app
        .get(
            "/search/messages?q=%27first%27%3A*%20%7C%20!",
            &arena.alice.token,
        )
        .await;
    assert_eq!(r.body["messages"][0]["id"], arena.message, "{r:?}");
    arena.still_works("hostile search queries").await;
}

#[tokio::test]
async fn other_peoples_chats_and_bad_cursors_are_404_or_422() {
    let arena = Arena::new().await;
    let (alice, watch) = (&arena.alice, &arena.watch);
    // watch's chat, seen by alice: 404 on every read path, the same as a chat that does not
    // exist.
    for path in [
        format!("/chats/{}/reads", arena.watch_chat),
        format!("/search/messages?q=a&chat_id={}", arena.watch_chat),
        "/chats/9223372036854775807/reads".to_string(),
        "/search/messages?q=a&chat_id=9223372036854775807".to_string(),
    ] {
        let r = arena.app.get(&path, &alice.token).await;
        expect_error(&path, &r, 404, "not_found", &[]);
    }
    // Not found in search results either, whatever alice searches.
    let r = arena
        .app
        .get("/search/messages?q=hello", &watch.token)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for (query, field) in [
        ("q=a&limit=-1", "limit"),
        ("q=a&limit=1e2", "limit"),
        ("q=a&limit=9223372036854775808", "limit"),
        ("q=a&before=-9223372036854775808", "before"),
        ("q=a&before=1.5", "before"),
        ("q=a&before=true", "before"),
        ("q=a&chat_id=", "chat_id"),
        ("q=a&chat_id=null", "chat_id"),
        ("q=a&chat_id=%5B1%5D", "chat_id"),
        ("q=a&chat_id=0x10", "chat_id"),
        ("q[]=a", "q"),
        ("Q=a", "q"),
    ] {
        let path = format!("/search/messages?{query}");
        let r = arena.app.get(&path, &alice.token).await;
        expect_error(&path, &r, 422, "validation_error", &[field]);
    }
    // Path ids of /reads are parsed as every path id is.
    for bad in ["0", "-1", "x", "9223372036854775808", "1.0"] {
        let path = format!("/chats/{bad}/reads");
        let r = arena.app.get(&path, &alice.token).await;
        expect_error(&path, &r, 422, "validation_error", &["chat_id"]);
    }
    // The new GET routes take no other method.
    for path in ["/unread", "/search/messages", "/chats/1/reads"] {
        let r = arena
            .app
            .call("POST", path, Some(&alice.token), Some(json!({})))
            .await;
        expect_error(path, &r, 405, "method_not_allowed", &[]);
        let allow = r.headers.get("allow").and_then(|v| v.to_str().ok());
        assert_eq!(allow, Some("GET, HEAD, OPTIONS"), "{path}");
    }
    arena.still_works("other people's chats").await;
}
