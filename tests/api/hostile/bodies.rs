//! JSON bodies of every endpoint that takes one: valid bodies with one field mutated (wrong
//! type, null, edge and broken raw values, deep nesting, huge strings, invalid UTF-8, lone
//! surrogates), removed and unknown and duplicate keys, random JSON of every shape, random
//! bytes, truncated documents, and every kind of content type; and the login form.
//!
//! Each case carries what the contract says about it (413 over 64 KiB, 415 for another
//! content type, 400 `invalid_json` for bad syntax, 422 naming the field for a wrong type,
//! a missing or an unknown field); cases whose values are well-typed only have to stay
//! below 500.

use std::sync::Mutex;

use serde_json::{json, Map, Value};

use super::body_contract::*;
use super::gen::{self, Gen, BROKEN_VALUES, EDGE_VALUES};
use super::{run_all, send_ok, Arena};

fn endpoints(arena: &Arena) -> Vec<Endpoint> {
    use reqwest::Method;
    let (chat, message) = (arena.chat, arena.message);
    let fake_refresh = "ab".repeat(32);
    vec![
        Endpoint {
            name: "register",
            method: Method::POST,
            path: "/auth/register".into(),
            caller: Caller::Nobody,
            fields: REGISTER,
            template: json!({"email": "x@example.com", "name": "Fuzz", "password": "correct horse"}),
        },
        Endpoint {
            name: "login",
            method: Method::POST,
            path: "/auth/login".into(),
            caller: Caller::Nobody,
            fields: LOGIN,
            template: json!({"email": arena.alice.email, "password": "correct horse"}),
        },
        Endpoint {
            name: "refresh",
            method: Method::POST,
            path: "/auth/refresh".into(),
            caller: Caller::Nobody,
            fields: REFRESH,
            template: json!({ "refresh_token": fake_refresh }),
        },
        Endpoint {
            name: "logout",
            method: Method::POST,
            path: "/auth/logout".into(),
            caller: Caller::Leaver,
            fields: LOGOUT,
            template: json!({"all": false}),
        },
        Endpoint {
            name: "create chat",
            method: Method::POST,
            path: "/chats".into(),
            caller: Caller::Alice,
            fields: CREATE_CHAT,
            template: json!({"type": "group", "title": "t", "participant_ids": [arena.bob.id]}),
        },
        Endpoint {
            name: "update chat",
            method: Method::PATCH,
            path: format!("/chats/{}", arena.patch_chat),
            caller: Caller::Alice,
            fields: UPDATE_CHAT,
            template: json!({"title": "t2", "is_active": true}),
        },
        Endpoint {
            name: "add members",
            method: Method::POST,
            path: format!("/chats/{}/members", arena.members_chat),
            caller: Caller::Alice,
            fields: ADD_MEMBERS,
            template: json!({ "user_ids": [arena.bob.id] }),
        },
        Endpoint {
            name: "send message",
            method: Method::POST,
            path: format!("/chats/{chat}/messages"),
            caller: Caller::Alice,
            fields: SEND,
            template: json!({"text": "hi", "client_id": "c-1", "reply_to": message,
                             "mentions": [arena.bob.id, arena.alice.id]}),
        },
        Endpoint {
            name: "edit message",
            method: Method::PATCH,
            path: format!("/chats/{chat}/messages/{message}"),
            caller: Caller::Alice,
            fields: EDIT,
            template: json!({"text": "edited", "mentions": [arena.bob.id]}),
        },
        Endpoint {
            name: "mark read",
            method: Method::POST,
            path: format!("/chats/{chat}/read"),
            caller: Caller::Alice,
            fields: READ,
            template: json!({ "message_id": message }),
        },
    ]
}

/// One request of the fuzz: which endpoint, the Content-Type (none when `None`), the body.
#[derive(Clone)]
struct Case {
    endpoint: usize,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
    /// A key that the body holds twice (the parsed value cannot show it).
    duplicate: Option<String>,
    /// How the case was made, for the failure message.
    how: String,
}

/// A body with `field` replaced by raw text (which may be anything, JSON or not).
fn with_raw(template: &Value, field: &str, raw: &[u8]) -> Vec<u8> {
    const MARK: &str = "\u{e000}hostile-slot\u{e000}";
    let mut value = template.clone();
    value[field] = Value::String(MARK.into());
    let text = serde_json::to_vec(&value).expect("serialises");
    let mark = serde_json::to_vec(&Value::String(MARK.into())).expect("serialises");
    let at = text
        .windows(mark.len())
        .position(|w| w == mark.as_slice())
        .expect("the mark is in the text");
    [&text[..at], raw, &text[at + mark.len()..]].concat()
}

/// Content types: JSON in its spellings, none, and everything else.
const CONTENT_TYPES: &[&[u8]] = &[
    b"application/json",
    b"application/json; charset=utf-8",
    b"APPLICATION/JSON",
    b"application/problem+json",
    b"application/x-www-form-urlencoded",
    b"text/plain",
    b"multipart/form-data; boundary=xyz",
    b"",
    b"json",
    b"*/*",
    b"application/json\xff",
    b"application/jsonx",
    b"text/json",
];

const MULTIPART_GARBAGE: &[u8] =
    b"--xyz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi\r\n--xyz\r\n\x00\xff--";

impl Case {
    fn new(endpoint: usize, body: Vec<u8>, how: impl Into<String>) -> Case {
        Case {
            endpoint,
            content_type: Some(b"application/json".to_vec()),
            body,
            duplicate: None,
            how: how.into(),
        }
    }
}

/// The fixed cases of one endpoint: every field against every edge and broken value, and
/// the template under every content type.
fn fixed_cases(index: usize, ep: &Endpoint) -> Vec<Case> {
    let mut cases = vec![Case::new(
        index,
        serde_json::to_vec(&ep.template).expect("serialises"),
        "the valid template",
    )];
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let long = |n: usize| format!("\"{}\"", "z".repeat(n));
    for f in ep.fields {
        let mut raws: Vec<Vec<u8>> = EDGE_VALUES.iter().map(|v| v.as_bytes().to_vec()).collect();
        raws.extend(BROKEN_VALUES.iter().map(|v| v.to_vec()));
        raws.extend([
            deep.clone().into_bytes(),
            long(60_000).into_bytes(),
            long(70_000).into_bytes(),
        ]);
        for raw in raws {
            let how = format!("{} = {}", f.name, gen::show(&raw));
            cases.push(Case::new(index, with_raw(&ep.template, f.name, &raw), how));
        }
        let mut without = ep.template.clone();
        if let Some(map) = without.as_object_mut() {
            map.remove(f.name);
        }
        cases.push(Case::new(
            index,
            serde_json::to_vec(&without).expect("serialises"),
            format!("without {}", f.name),
        ));
        let text = serde_json::to_string(&ep.template).expect("serialises");
        let twice = format!("{{\"{}\":null,{}", f.name, &text[1..]);
        let mut case = Case::new(index, twice.into_bytes(), format!("{} twice", f.name));
        case.duplicate = Some(f.name.to_string());
        cases.push(case);
    }
    let template = serde_json::to_vec(&ep.template).expect("serialises");
    for ct in CONTENT_TYPES {
        let mut case = Case::new(
            index,
            template.clone(),
            format!("content type {}", gen::show(ct)),
        );
        case.content_type = Some(ct.to_vec());
        cases.push(case);
    }
    let mut case = Case::new(index, template.clone(), "no content type");
    case.content_type = None;
    cases.push(case);
    let mut case = Case::new(index, MULTIPART_GARBAGE.to_vec(), "multipart garbage");
    case.content_type = Some(b"multipart/form-data; boundary=xyz".to_vec());
    cases.push(case);
    for (body, how) in [
        (Vec::new(), "an empty body"),
        (b"   \n".to_vec(), "a blank body"),
        (
            [b"\xef\xbb\xbf".as_slice(), &template].concat(),
            "a BOM before the body",
        ),
        (
            [template.as_slice(), b"\x00"].concat(),
            "a NUL after the body",
        ),
        ([template.as_slice(), b" {}"].concat(), "two documents"),
        (
            [b"[".as_slice(), &template, b"]"].concat(),
            "the body in an array",
        ),
        (b"[]".to_vec(), "an empty array"),
        (b"null".to_vec(), "null"),
        (b"\"text\"".to_vec(), "a string"),
        (b"42".to_vec(), "a number"),
        (vec![b'x'; MAX_BODY + 1], "one byte over the limit"),
    ] {
        cases.push(Case::new(index, body, how));
    }
    cases
}

/// A random case for one endpoint.
fn random_case(g: &mut Gen, index: usize, ep: &Endpoint) -> Case {
    let template = serde_json::to_vec(&ep.template).expect("serialises");
    let names: Vec<&str> = ep.fields.iter().map(|f| f.name).collect();
    let target = g.pick(&names);
    let mut case = match g.below(20) {
        0..=4 => {
            let raw = g.raw_value();
            let how = format!("{target} = {}", gen::show(&raw));
            Case::new(index, with_raw(&ep.template, target, &raw), how)
        }
        5 | 6 => {
            let text = g.string();
            let mut value = ep.template.clone();
            value[target] = Value::String(text);
            Case::new(
                index,
                serde_json::to_vec(&value).expect("serialises"),
                format!("{target} = a hostile string"),
            )
        }
        7 => {
            let mut value = ep.template.clone();
            if let Some(map) = value.as_object_mut() {
                map.remove(target);
            }
            Case::new(
                index,
                serde_json::to_vec(&value).expect("serialises"),
                format!("without {target}"),
            )
        }
        8 | 9 => {
            let mut value = ep.template.clone();
            let key = g.key(&names);
            value[key.as_str()] = g.value(2);
            Case::new(
                index,
                serde_json::to_vec(&value).expect("serialises"),
                format!("{key:?} set to a random value"),
            )
        }
        10 => {
            let raw = g.raw_value();
            let text = String::from_utf8_lossy(&template).to_string();
            let body = [
                format!("{{\"{target}\":").as_bytes(),
                &raw,
                b",",
                &text.as_bytes()[1..],
            ]
            .concat();
            let mut case = Case::new(
                index,
                body,
                format!("{target} twice, first as {}", gen::show(&raw)),
            );
            case.duplicate = Some(target.to_string());
            case
        }
        11..=13 => {
            let mut value = g.value(4);
            if g.chance(0.5) {
                // An object with the endpoint's own keys, holding random values.
                let mut map = Map::new();
                for _ in 0..g.below(5) {
                    map.insert(g.key(&names), g.value(2));
                }
                value = Value::Object(map);
            }
            Case::new(
                index,
                serde_json::to_vec(&value).expect("serialises"),
                "a random JSON value",
            )
        }
        14 | 15 => Case::new(index, g.bytes(300), "random bytes"),
        16 | 17 => {
            let cut = g.below(template.len());
            Case::new(
                index,
                template[..cut].to_vec(),
                format!("cut after {cut} bytes"),
            )
        }
        18 => {
            let at = g.below(template.len());
            let mut body = template.clone();
            let byte = g.rng_byte();
            body[at] = byte;
            Case::new(index, body, format!("byte {at} set to {byte:#04x}"))
        }
        _ => {
            let garbage = g.bytes(8);
            Case::new(
                index,
                [template.as_slice(), &garbage].concat(),
                "trailing garbage",
            )
        }
    };
    match g.below(10) {
        0 => case.content_type = None,
        1 => case.content_type = Some(g.pick(CONTENT_TYPES).to_vec()),
        _ => {}
    }
    case
}

/// Logs in the leaver again after a logout ended their session.
struct Leaver {
    email: String,
    token: Mutex<String>,
}

impl Leaver {
    async fn login(arena: &Arena, email: &str) -> String {
        let r = send_ok(
            "leaver login",
            arena
                .http
                .post(arena.url("/auth/login"))
                .json(&json!({"email": email, "password": "correct horse"})),
        )
        .await;
        assert_eq!(r.status, 200, "leaver login: {r:?}");
        r.body["access_token"].as_str().expect("token").to_string()
    }
}

async fn run_case(arena: &Arena, eps: &[Endpoint], leaver: &Leaver, case: Case, n: usize) {
    let ep = &eps[case.endpoint];
    let mut body = case.body.clone();
    if ep.name == "register" {
        // Unique emails, so valid registrations keep reaching the insert.
        if let Ok(text) = std::str::from_utf8(&case.body) {
            body = text
                .replace("x@example.com", &format!("fuzz{n}@example.com"))
                .into_bytes();
        }
    }
    let expect = oracle(
        ep,
        case.content_type.as_deref(),
        &body,
        case.duplicate.as_deref(),
    );
    let what = format!(
        "{} {} [{}] content-type {:?} body {}",
        ep.method,
        ep.path,
        case.how,
        case.content_type.as_deref().map(gen::show),
        gen::show(&body)
    );
    let mut request = arena
        .http
        .request(ep.method.clone(), arena.url(&ep.path))
        .body(body);
    if let Some(ct) = &case.content_type {
        request = request.header(
            "content-type",
            reqwest::header::HeaderValue::from_bytes(ct).expect("a valid header value"),
        );
    }
    match ep.caller {
        Caller::Nobody => {}
        Caller::Alice => request = request.bearer_auth(&arena.alice.token),
        Caller::Leaver => {
            let token = leaver.token.lock().expect("lock").clone();
            request = request.bearer_auth(token);
        }
    }
    let r = send_ok(&what, request).await;
    check(&what, &r, &expect);
    // (The refresh template holds a made-up token: 401 is its right answer.)
    if case.how == "the valid template" && ep.name != "refresh" {
        assert!(r.status < 300, "{what}: the template must succeed: {r:?}");
    }
    if ep.caller == Caller::Leaver && r.status == 204 {
        let token = Leaver::login(arena, &leaver.email).await;
        *leaver.token.lock().expect("lock") = token;
    }
}

#[tokio::test]
async fn every_json_body_is_parsed_without_a_5xx_and_with_the_contracts_status() {
    let arena = Arena::new().await;
    let eps = endpoints(&arena);
    let leaver_user = arena.app.user("leaver").await;
    let leaver = Leaver {
        email: leaver_user.email.clone(),
        token: Mutex::new(leaver_user.token.clone()),
    };
    let mut g = Gen::new("bodies");
    let per_endpoint = gen::cases(60);
    let mut counter = 0usize;
    for (index, ep) in eps.iter().enumerate() {
        let mut cases = fixed_cases(index, ep);
        cases.extend((0..per_endpoint).map(|_| random_case(&mut g, index, ep)));
        let numbered: Vec<(usize, Case)> = cases
            .into_iter()
            .map(|c| {
                counter += 1;
                (counter, c)
            })
            .collect();
        if ep.caller == Caller::Leaver {
            // Sequential: a successful logout ends the session the next case uses.
            for (n, case) in numbered {
                run_case(&arena, &eps, &leaver, case, n).await;
            }
        } else {
            run_all(numbered, |(n, case)| {
                run_case(&arena, &eps, &leaver, case, n)
            })
            .await;
        }
        arena.still_works(&format!("the {} bodies", ep.name)).await;
    }
}

#[tokio::test]
async fn the_login_form_is_parsed_without_a_5xx() {
    let arena = Arena::new().await;
    let mut g = Gen::new("login form");
    let names = ["username", "password", "grant_type", "scope", "client_id"];
    let email = gen::percent_encode(&arena.alice.email);
    let mut bodies: Vec<Vec<u8>> = vec![
        format!("username={email}&password=correct+horse").into_bytes(),
        format!("grant_type=password&username={email}&password=correct%20horse").into_bytes(),
        format!("grant_type=client_credentials&username={email}&password=x").into_bytes(),
        b"username=&password=".to_vec(),
        b"username=a%zz&password=%00".to_vec(),
        b"username=%c0%80&password=%ff".to_vec(),
        b"password=x".to_vec(),
        b"username=x".to_vec(),
        b"username=x&username=y&password=z&password=w".to_vec(),
        b"&&&===&".to_vec(),
        b"".to_vec(),
        vec![b'a'; MAX_BODY + 1],
    ];
    for _ in 0..gen::cases(60) {
        bodies.push(if g.chance(0.8) {
            g.query(&names).into_bytes()
        } else {
            g.bytes(200)
        });
    }
    let content_types: &[&str] = &[
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-Urlencoded",
    ];
    let cases: Vec<(usize, Vec<u8>)> = bodies.into_iter().enumerate().collect();
    run_all(cases, |(i, body)| {
        let arena = &arena;
        async move {
            let ct = content_types[i % content_types.len()];
            let expect = if body.len() > MAX_BODY {
                Expect::Error(413, "payload_too_large", vec![])
            } else {
                form_oracle(&body)
            };
            let what = format!("POST /auth/login ({ct}) {}", gen::show(&body));
            let r = send_ok(
                &what,
                arena
                    .http
                    .post(arena.url("/auth/login"))
                    .header("content-type", ct)
                    .body(body),
            )
            .await;
            check(&what, &r, &expect);
            if i < 2 {
                assert_eq!(r.status, 200, "{what}: the valid form must log in: {r:?}");
            }
        }
    })
    .await;
    arena.still_works("the login forms").await;
}
