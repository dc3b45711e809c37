//! In-process fuzzing of the public pure parsers, thousands of cases a second: the query
//! string and token extraction, `parse_json`, `normalize_email` and `Auth::verify`. Each
//! property says what an accepted input must look like, not only that nothing panics.

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{json, Value};

use super::forge::{b64, signed, test_secret};
use super::gen::{self, Gen, BROKEN_VALUES, EDGE_VALUES};
use rtchat::testing::normalize_email;
use rtchat::testing::Auth;
use rtchat::testing::{parse_json, parse_query, request_token};

/// In-process cases per property: cheap, so many.
fn in_process_cases() -> usize {
    gen::cases(100) * 20
}

#[test]
fn query_strings_round_trip_and_junk_never_panics() {
    let mut g = Gen::new("parse_query");
    for _ in 0..in_process_cases() {
        let pairs: Vec<(String, String)> =
            (0..g.below(5)).map(|_| (g.string(), g.string())).collect();
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        assert_eq!(parse_query(Some(&encoded)), pairs, "{encoded}");
        let junk = g.query(&["token", "limit", "q"]);
        parse_query(Some(&junk));
        parse_query(Some(&String::from_utf8_lossy(&g.bytes(100))));
    }
    assert!(parse_query(None).is_empty());
}

#[test]
fn the_token_comes_from_a_bearer_header_else_the_first_query_token() {
    let mut g = Gen::new("request_token");
    for _ in 0..in_process_cases() {
        let mut headers = HeaderMap::new();
        let header: Option<Vec<u8>> = match g.below(4) {
            0 => None,
            1 => Some(
                format!(
                    "{} {}",
                    g.pick(&["Bearer", "bearer", "BEARER", "Basic", "Token", ""]),
                    g.string()
                )
                .into_bytes(),
            ),
            2 => Some(g.bytes(40)),
            _ => Some(format!("Bearer {}", g.pick(&["a.b.c", " x ", "", "\t"])).into_bytes()),
        };
        let sent = header.and_then(|h| HeaderValue::from_bytes(&h).ok());
        if let Some(value) = &sent {
            headers.insert(AUTHORIZATION, value.clone());
        }
        let query = parse_query(Some(&g.query(&["token", "token", "x"])));
        let token = request_token(&headers, &query);
        match &sent {
            None => {
                let first = query
                    .iter()
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.as_str());
                assert_eq!(token, first, "{query:?}");
            }
            // The header wins, even when it holds no bearer token.
            Some(value) => {
                if let Some(token) = token {
                    let text = value
                        .to_str()
                        .expect("a token came from a visible-ASCII header");
                    let (scheme, rest) = text.split_once(' ').expect("scheme and token");
                    assert!(scheme.eq_ignore_ascii_case("bearer"), "{text:?}");
                    assert_eq!(token, rest.trim(), "{text:?}");
                }
            }
        }
    }
}

/// A body shaped like the handlers' bodies.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Shape {
    text: String,
    #[serde(default)]
    n: Option<i64>,
    #[serde(default)]
    ids: Vec<i64>,
}

#[test]
fn parse_json_answers_400_for_syntax_and_422_for_shape() {
    let mut g = Gen::new("parse_json");
    let template = json!({"text": "hi", "n": 1, "ids": [1, 2]});
    for _ in 0..in_process_cases() {
        let body: Vec<u8> = match g.below(5) {
            0 => g.bytes(200),
            1 => serde_json::to_vec(&g.value(4)).expect("serialises"),
            2 => {
                let field = g.pick(&["text", "n", "ids", "zzz"]);
                let raw: Vec<u8> = if g.chance(0.5) {
                    g.pick(EDGE_VALUES).as_bytes().to_vec()
                } else {
                    g.pick(BROKEN_VALUES).to_vec()
                };
                let text = template.to_string();
                let mark = format!("\"{field}\":");
                match text.find(&mark) {
                    Some(at) => {
                        let value_end = text[at + mark.len()..]
                            .find([',', '}'])
                            .map(|e| at + mark.len() + e)
                            .unwrap_or(text.len());
                        [
                            &text.as_bytes()[..at + mark.len()],
                            &raw,
                            &text.as_bytes()[value_end..],
                        ]
                        .concat()
                    }
                    None => format!(
                        "{{\"{field}\":{},{}",
                        String::from_utf8_lossy(&raw),
                        &text[1..]
                    )
                    .into_bytes(),
                }
            }
            3 => {
                let text = template.to_string();
                text.as_bytes()[..g.below(text.len())].to_vec()
            }
            _ => g.raw_value(),
        };
        let syntax_ok = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        match parse_json::<Shape>(&body) {
            Ok(shape) => {
                let value: Value = serde_json::from_slice(&body).expect("accepted bodies are JSON");
                assert_eq!(value["text"], shape.text, "{}", gen::show(&body));
            }
            Err(e) => {
                let status = e.status().as_u16();
                assert!(
                    status == 400 || status == 422,
                    "{status} for {}",
                    gen::show(&body)
                );
                if !syntax_ok || body.iter().all(u8::is_ascii_whitespace) {
                    assert_eq!(status, 400, "{}", gen::show(&body));
                }
            }
        }
    }
}

#[test]
fn normalized_emails_are_trimmed_single_at_and_free_of_spaces() {
    let mut g = Gen::new("normalize_email");
    for _ in 0..in_process_cases() {
        let raw = match g.below(3) {
            0 => g.string(),
            1 => format!("{}@{}", g.string(), g.string()),
            _ => format!(
                "{}{}@example.com{}",
                g.pick(&["", " ", "\t", "\u{a0}"]),
                g.string(),
                g.pick(&["", " ", "\n"])
            ),
        };
        if let Ok(email) = normalize_email(&raw) {
            assert_eq!(email, raw.trim(), "{raw:?}");
            let (local, domain) = email.split_once('@').expect("an @");
            assert!(
                !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
                "{raw:?}"
            );
            assert!(
                !email.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{raw:?}"
            );
            assert!(raw.chars().count() <= 254, "{raw:?}");
        }
    }
}

#[test]
fn only_hs256_tokens_with_well_typed_claims_verify() {
    let secret = test_secret();
    let auth = Auth::new(secret.as_bytes(), Duration::from_secs(600));
    let mut g = Gen::new("verify");
    let now = rtchat::testing::unix_now() as i64;
    let mut accepted = 0;
    for _ in 0..in_process_cases() {
        let claim = |g: &mut Gen, good: Value| -> Value {
            if g.chance(0.7) {
                good
            } else {
                g.value(1)
            }
        };
        let sub = json!(g.rng_byte().max(1).to_string());
        let mut claims = json!({
            "sub": claim(&mut g, sub),
            "iat": claim(&mut g, json!(now)),
            "exp": claim(&mut g, json!(now + 600)),
            "sid": claim(&mut g, json!(7)),
        });
        if g.chance(0.1) {
            let key = g.pick(&["sub", "iat", "exp", "sid"]);
            claims.as_object_mut().expect("an object").remove(key);
        }
        let alg = if g.chance(0.8) {
            Algorithm::HS256
        } else {
            g.pick(&[Algorithm::HS384, Algorithm::HS512])
        };
        let header_alg = if g.chance(0.9) {
            format!("{alg:?}")
        } else {
            g.pick(&["none", "RS256", "hs256"]).to_string()
        };
        let token = match g.below(10) {
            0 => g.string(),
            1 => (0..g.below(5))
                .map(|_| b64(&g.bytes(40)))
                .collect::<Vec<_>>()
                .join("."),
            _ => signed(
                &json!({"alg": header_alg, "typ": "JWT"}),
                &claims,
                alg,
                secret.as_bytes(),
            ),
        };
        let Ok(caller) = auth.verify(&token) else {
            continue;
        };
        accepted += 1;
        assert!(alg == Algorithm::HS256 && header_alg == "HS256", "{token}");
        let sub = claims["sub"].as_str().expect("sub is a string");
        assert_eq!(sub.parse::<i64>().ok(), Some(caller.user_id), "{claims}");
        assert!(caller.user_id > 0, "{claims}");
        assert_eq!(claims["sid"].as_i64(), Some(caller.session_id), "{claims}");
        let exp = claims["exp"].as_u64().expect("exp is a number");
        assert!(exp >= (now - 60) as u64, "{claims}");
        assert!(claims["iat"].is_u64(), "{claims}");
    }
    assert!(
        accepted > 0,
        "no generated token was valid: the generator is broken"
    );
}
