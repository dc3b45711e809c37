//! Message search (v2): `GET /search/messages`.

use serde_json::Value;

use crate::support::{assert_error, assert_invalid, TestApp, TestUser};

/// The ids of a search's messages, and `has_more`.
async fn search(app: &TestApp, user: &TestUser, query: &str) -> (Vec<i64>, bool) {
    let r = app
        .get(&format!("/search/messages?{query}"), &user.token)
        .await;
    assert_eq!(r.status, 200, "{query}: {r:?}");
    let ids = r.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    (ids, r.body["has_more"].as_bool().expect("has_more"))
}

fn q(text: &str) -> String {
    format!(
        "q={}",
        form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
    )
}

fn id(m: &Value) -> i64 {
    m["id"].as_i64().expect("id")
}

#[tokio::test]
async fn search_finds_every_word_the_last_as_a_prefix_in_any_language_any_case() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let b = app.user("b").await;
    let chat = app.group(&a, &[&b]).await;
    let ru = app.send(&b, chat, "Привет мир!").await;
    let en = app.send(&a, chat, "hello world").await;
    let both = app.send(&a, chat, "Hello, МИР; and the WORLD").await;
    app.send(&a, chat, "nothing to see").await;

    for (query, expected) in [
        ("прив", vec![id(&ru)]),
        ("мир", vec![id(&both), id(&ru)]),
        ("ПРИВЕТ МИР", vec![id(&ru)]),
        ("hello wor", vec![id(&both), id(&en)]),
        ("WORLD", vec![id(&both), id(&en)]),
        ("world hello", vec![id(&both), id(&en)]),
        // Only the last word is a prefix; every word must occur.
        ("hel world", vec![]),
        ("hello мир", vec![id(&both)]),
        ("hello nothing", vec![]),
        // Punctuation separates words, and never reaches PostgreSQL as syntax.
        ("hello&wor", vec![id(&both), id(&en)]),
        ("'hello' | !world", vec![id(&both), id(&en)]),
    ] {
        let (ids, has_more) = search(&app, &b, &q(query)).await;
        assert_eq!(ids, expected, "q={query:?}");
        assert!(!has_more);
    }
    // The result is the Message of the history pages.
    let r = app
        .get(&format!("/search/messages?{}", q("прив")), &a.token)
        .await;
    let history = app.get(&format!("/chats/{chat}/messages"), &a.token).await;
    assert_eq!(r.body["messages"][0], history.body["messages"][0]);
    // HEAD answers as GET does.
    let r = app
        .call(
            "HEAD",
            &format!("/search/messages?{}", q("hello")),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn search_sees_only_chats_the_caller_is_a_member_of_now() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let b = app.user("b").await;
    let stranger = app.user("stranger").await;
    let shared = app.group(&a, &[&b]).await;
    let mine = app.group(&a, &[]).await;
    let in_shared = app.send(&a, shared, "secret plans").await;
    let in_mine = app.send(&a, mine, "secret diary").await;

    assert_eq!(
        search(&app, &a, &q("secret")).await.0,
        [id(&in_mine), id(&in_shared)]
    );
    assert_eq!(search(&app, &b, &q("secret")).await.0, [id(&in_shared)]);
    assert!(search(&app, &stranger, &q("secret")).await.0.is_empty());
    // chat_id narrows to one chat of the caller's.
    let narrowed = format!("{}&chat_id={shared}", q("secret"));
    assert_eq!(search(&app, &a, &narrowed).await.0, [id(&in_shared)]);
    // A chat the caller cannot see is 404, existing or not.
    let r = app
        .get(
            &format!("/search/messages?{}&chat_id={mine}", q("secret")),
            &b.token,
        )
        .await;
    assert_error(&r, 404, "not_found");
    let r = app
        .get(
            &format!("/search/messages?{}&chat_id=999999", q("secret")),
            &b.token,
        )
        .await;
    assert_error(&r, 404, "not_found");

    // A former member no longer finds the chat's messages.
    let r = app
        .delete(&format!("/chats/{shared}/members/{}", b.id), &b.token)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert!(search(&app, &b, &q("secret")).await.0.is_empty());
    let r = app
        .get(&format!("/search/messages?{narrowed}"), &b.token)
        .await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn search_pages_newest_first_with_before() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let chat = app.group(&a, &[]).await;
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(id(&app.send(&a, chat, &format!("match {n}")).await));
        app.send(&a, chat, "other").await;
    }
    sent.reverse();

    let (page1, more1) = search(&app, &a, &format!("{}&limit=2", q("match"))).await;
    assert_eq!((page1.as_slice(), more1), (&sent[0..2], true));
    let (page2, more2) = search(
        &app,
        &a,
        &format!("{}&limit=2&before={}", q("match"), page1[1]),
    )
    .await;
    assert_eq!((page2.as_slice(), more2), (&sent[2..4], true));
    let (page3, more3) = search(
        &app,
        &a,
        &format!("{}&limit=2&before={}", q("match"), page2[1]),
    )
    .await;
    assert_eq!((page3.as_slice(), more3), (&sent[4..5], false));
    // The default page is 20.
    for n in 0..20 {
        app.send(&a, chat, &format!("match more {n}")).await;
    }
    let (ids, more) = search(&app, &a, &q("match")).await;
    assert_eq!((ids.len(), more), (20, true));
}

#[tokio::test]
async fn search_refuses_bad_queries_with_422() {
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    for query in [
        String::new(),
        "q=".into(),
        "q=%20".into(),
        q("%_&|!:*'\"\\()<->"),
        q(&"a".repeat(201)),
        q("one two three four five six seven eight nine ten eleven"),
    ] {
        let r = app
            .get(&format!("/search/messages?{query}"), &a.token)
            .await;
        assert_invalid(&r, "q");
    }
    // At the bounds: 200 characters and 10 words are fine.
    search(&app, &a, &q(&"a".repeat(200))).await;
    search(
        &app,
        &a,
        &q("one two three four five six seven eight nine ten"),
    )
    .await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("before=-1", "before"),
        ("chat_id=0", "chat_id"),
        ("chat_id=-5", "chat_id"),
        ("chat_id=abc", "chat_id"),
        ("chat_id=99999999999999999999", "chat_id"),
    ] {
        let r = app
            .get(&format!("/search/messages?q=x&{query}"), &a.token)
            .await;
        assert_invalid(&r, field);
    }
    let r = app.call("GET", "/search/messages?q=x", None, None).await;
    assert_error(&r, 401, "unauthorized");
}

#[tokio::test]
async fn a_search_past_its_statement_timeout_answers_503_server_busy() {
    let app = TestApp::spawn_with(|c| c.search_timeout = std::time::Duration::from_millis(1)).await;
    let a = app.user("a").await;
    let mine = app.group(&a, &[]).await;
    // 200,000 messages of a's, half with `alpha`, half with `beta`, none with both: a search
    // for both must look at all of them (through the index or the rows) to find none.
    let (db, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    db.execute(
        "INSERT INTO messages (chat_id, sender_id, text)
         SELECT $1, $2, CASE WHEN g % 2 = 0 THEN 'alpha ' ELSE 'beta ' END || g
         FROM generate_series(1, 200000) g",
        &[&mine, &a.id],
    )
    .await
    .expect("insert messages");
    db.batch_execute("ANALYZE messages").await.expect("analyze");

    let r = app
        .get(&format!("/search/messages?{}", q("alpha beta")), &a.token)
        .await;

    assert_error(&r, 503, "server_busy");
    assert!(
        r.body["detail"].as_str().unwrap_or("").contains("too long"),
        "{r:?}"
    );
    assert!(r.headers.contains_key("retry-after"), "{r:?}");
    // The connection went back to the pool in a usable state (its timeout was local).
    let r = app.get(&format!("/chats/{mine}/messages"), &a.token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.get("/unread", &a.token).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn searches_are_rate_limited_per_user() {
    // One search per 100 s after the burst: the test never waits long enough for a refill.
    let app = TestApp::spawn_with(|c| c.rate_searches_per_sec = 0.01).await;
    let a = app.user("a").await;
    let b = app.user("b").await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let r = app
            .get(&format!("/search/messages?{}", q("hi")), &a.token)
            .await;
        if r.status == 429 {
            assert_error(&r, 429, "rate_limited");
            assert!(r.headers.contains_key("retry-after"), "{r:?}");
        }
        statuses.push(r.status);
    }
    // A burst of 10, then refused.
    let mut expected = vec![200; 10];
    expected.push(429);
    assert_eq!(statuses, expected);
    // Per user: b has a budget of its own.
    let r = app
        .get(&format!("/search/messages?{}", q("hi")), &b.token)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn words_inside_emails_urls_paths_and_numbers_are_found() {
    // PostgreSQL's parser keeps `bob@example.com`, `github.com/x`, `docs/api.md` and `3.14`
    // as single tokens; `q` is split at every non-alphanumeric character, so the text must
    // be split the same way or `example` never matches.
    let app = TestApp::spawn().await;
    let a = app.user("a").await;
    let b = app.user("b").await;
    let chat = app.group(&a, &[&b]).await;
    let mail = app.send(&a, chat, "mail bob@example.com today").await;
    let url = app.send(&a, chat, "see https://github.com/rtchat/x").await;
    let path = app.send(&a, chat, "read docs/api.md first").await;
    let number = app.send(&a, chat, "pi is 3.14, v1.2 ships").await;

    for (query, expected) in [
        ("example", vec![id(&mail)]),
        ("bob example", vec![id(&mail)]),
        ("bob@example.com", vec![id(&mail)]),
        ("github", vec![id(&url)]),
        ("rtchat x", vec![id(&url)]),
        ("api md", vec![id(&path)]),
        ("docs/api.md", vec![id(&path)]),
        ("14", vec![id(&number)]),
        ("3.14", vec![id(&number)]),
        ("v1 2", vec![id(&number)]),
    ] {
        let (ids, _) = search(&app, &b, &q(query)).await;
        assert_eq!(ids, expected, "q={query:?}");
    }
}
