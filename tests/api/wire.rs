//! One wire shape for a message: the `new_message` payload, which `rtchat_send_messages`
//! builds in SQL (`json_build_object`), equals the message as the REST endpoints serialise it
//! (`model::Message`), key for key: a drift in either would give clients two shapes.

use serde_json::{json, Value};

use crate::support::*;
use crate::wsclient::WsClient;

/// Texts that JSON escapes differently from plain ASCII, or that a hand-built encoder gets
/// wrong: quotes, backslashes, control characters, non-ASCII and astral characters.
const TEXTS: &[&str] = &[
    "plain",
    "say \"hi\" to 'them'",
    "back\\slash \\\" \\n not a newline",
    "two\nlines\r\nand\ta tab",
    "ünïcödé — 日本語 🙂 \u{2028}\u{2029} end",
];

#[tokio::test]
async fn new_message_payload_equals_the_message_as_rest_returns_it() {
    let app = TestApp::spawn().await;
    let sender = app.user("wire-sender").await;
    let peer = app.user("wire-peer").await;
    let chat = app.group(&sender, &[&peer]).await;
    let mut socket = WsClient::connect(&app, &peer.token, None).await;
    assert_eq!(
        socket.ready["seq"], 1,
        "create_chat was the peer's first event"
    );

    let mut sent: Vec<Value> = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        // Every other message carries a client_id (with characters JSON must escape too).
        let mut body = json!({ "text": text });
        if i % 2 == 1 {
            body["client_id"] = json!(format!("id-\"{i}\"\\é"));
        }
        // And every other one is a reply with mentions (sent unordered, with a duplicate).
        if i % 2 == 0 && i > 0 {
            body["reply_to"] = sent[0]["id"].clone();
            body["mentions"] = json!([peer.id, sender.id, peer.id]);
        }
        let r = app
            .post(&format!("/chats/{chat}/messages"), &sender.token, body)
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        sent.push(r.body);
    }
    assert!(sent.iter().any(|m| m["client_id"].is_null()));
    assert!(sent.iter().any(|m| m["client_id"].is_string()));
    let mut both = [sender.id, peer.id];
    both.sort();
    assert_eq!(sent[2]["mentions"], json!(both), "ascending, deduplicated");
    assert_eq!(sent[2]["reply_to"], sent[0]["id"]);
    assert_eq!(sent[1]["mentions"], json!([]));
    assert!(sent[1]["reply_to"].is_null());

    let r = app
        .get(&format!("/chats/{chat}/messages?limit=100"), &sender.token)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut history = r.body["messages"].as_array().unwrap().clone();
    assert_eq!(history.len(), TEXTS.len());
    // `my_reactions` is the caller's own, in GET responses only: never in what every member
    // shares (the event) nor in the send's answer.
    for m in &mut history {
        let mine = m.as_object_mut().unwrap().remove("my_reactions");
        assert_eq!(mine, Some(json!([])), "GET carries my_reactions: {m}");
    }

    let r = app.get("/events?since=0", &peer.token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let logged: Vec<Value> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "new_message")
        .map(|e| e["payload"].clone())
        .collect();
    assert_eq!(logged.len(), TEXTS.len());

    for (i, text) in TEXTS.iter().enumerate() {
        let event = socket.next_event().await;
        assert_eq!(event["type"], "new_message", "{event}");
        let pushed = &event["payload"];
        let rest = &history[i];
        assert_eq!(
            rest["text"],
            json!(text),
            "the text survives the round trip"
        );
        assert_same_keys(pushed, rest, "pushed event vs GET history");
        assert_eq!(pushed, rest, "pushed event vs GET history");
        assert_eq!(&logged[i], rest, "GET /events vs GET history");
        assert_eq!(&sent[i], rest, "the 201 of the send vs GET history");
        // Null fields are present as null, not left out.
        assert!(rest.as_object().unwrap()["edited_at"].is_null());
        let created = rest["created_at"].as_str().unwrap();
        // RFC 3339 UTC with microseconds and Z, e.g. 2024-05-01T12:00:00.123456Z.
        assert_eq!(created.len(), 27, "{created}");
        assert!(
            created.ends_with('Z') && created.as_bytes()[19] == b'.',
            "{created}"
        );
    }
}

/// Equal values with equal key sets (`assert_eq!` on `Value` already implies it; this says
/// which key differs when it fails).
fn assert_same_keys(a: &Value, b: &Value, what: &str) {
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(a), keys(b), "{what}");
    assert_eq!(
        keys(a),
        [
            "chat_id",
            "client_id",
            "created_at",
            "edited_at",
            "id",
            "mentions",
            "reactions",
            "reply_to",
            "sender_id",
            "text"
        ],
        "{what}"
    );
}
