//! Forged tokens: HMAC-signed from any header and claims JSON, and the lists the token
//! tests throw at the server — those every endpoint must refuse, and odd ones signed with
//! the right secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::Arena;

/// The secret the test servers sign with.
pub fn test_secret() -> String {
    rtchat::config::Config::for_tests("unused")
        .jwt_secret
        .expect("tests set a JWT secret")
        .expose()
        .to_string()
}

/// Base64url without padding, as JWTs have it.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from raw header and claims JSON, HMAC-signed with `secret` under `alg`.
pub fn signed(header: &Value, claims: &Value, alg: Algorithm, secret: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .expect("HMAC signs anything");
    format!("{message}.{signature}")
}

/// The claims inside a token (its middle part), unverified.
pub fn claims_of(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).expect("base64")).expect("JSON")
}

/// Tokens every endpoint must refuse with 401, each with a name for the failure message.
pub fn bad_tokens(arena: &Arena) -> Vec<(String, String)> {
    let secret = test_secret();
    let key = secret.as_bytes();
    let now = rtchat::testing::unix_now() as i64;
    let good = claims_of(&arena.alice.token);
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = good.clone();
        claims
            .as_object_mut()
            .expect("claims are an object")
            .remove(name);
        claims
    };
    let mut tokens: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, token: String| tokens.push((name.to_string(), token));

    for (name, token) in [
        ("empty", ""),
        ("a space", " "),
        ("null", "null"),
        ("one part", "abc"),
        ("two parts", "abc.def"),
        ("three junk parts", "abc.def.ghi"),
        ("four parts", "a.b.c.d"),
        ("dots", "..."),
        ("empty JSON parts", "e30.e30."),
        ("empty JSON parts signed with junk", "e30.e30.e30"),
    ] {
        add(name, token.to_string());
    }
    // alg none, in every spelling, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = format!(
            "{}.{}.",
            b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            b64(good.to_string().as_bytes())
        );
        add(&format!("alg {alg}"), unsigned.clone());
        add(
            &format!("alg {alg} without the dot"),
            unsigned.trim_end_matches('.').to_string(),
        );
        let signature = arena.alice.token.rsplit('.').next().expect("a signature");
        add(
            &format!("alg {alg} with a signature"),
            format!("{unsigned}{signature}"),
        );
    }
    // The right secret under other algorithms, and asymmetric headers over an HMAC.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(&Header::new(alg), &good, &EncodingKey::from_secret(key))
            .expect("signs");
        add(&format!("{alg:?} with the right secret"), token);
    }
    for alg in [
        "RS256", "ES256", "PS256", "EdDSA", "hs256", "HS256 ", "", "HS1",
    ] {
        add(
            &format!("header alg {alg:?} over an HS256 signature"),
            signed(
                &json!({"alg": alg, "typ": "JWT"}),
                &good,
                Algorithm::HS256,
                key,
            ),
        );
    }
    for header in [
        json!({"typ": "JWT"}),
        json!({"alg": 256}),
        json!(["HS256"]),
        json!("HS256"),
        json!(null),
    ] {
        add(
            &format!("header {header}"),
            signed(&header, &good, Algorithm::HS256, key),
        );
    }
    add(
        "the wrong secret",
        signed(
            &hs256,
            &good,
            Algorithm::HS256,
            b"not-the-secret-not-the-secret",
        ),
    );
    add(
        "an empty secret",
        signed(&hs256, &good, Algorithm::HS256, b""),
    );
    // Expiry: long past, and just past the 60 s leeway.
    add(
        "expired an hour ago",
        signed(
            &hs256,
            &with("exp", json!(now - 3600)),
            Algorithm::HS256,
            key,
        ),
    );
    add(
        "expired 120 s ago",
        signed(
            &hs256,
            &with("exp", json!(now - 120)),
            Algorithm::HS256,
            key,
        ),
    );
    for (claim, values) in [
        (
            "exp",
            vec![
                json!("9999999999"),
                json!(1e20),
                json!(-1),
                json!(null),
                json!(true),
                json!([]),
                json!({}),
            ],
        ),
        (
            "sub",
            vec![
                json!(arena.alice.id),
                json!(null),
                json!(""),
                json!("0"),
                json!("-1"),
                json!("abc"),
                json!("1.0"),
                json!("99999999999999999999"),
                json!(" 1"),
                json!([]),
            ],
        ),
        (
            "sid",
            vec![
                json!("1"),
                json!(1.5),
                json!(null),
                json!(u64::MAX),
                json!({}),
            ],
        ),
        ("iat", vec![json!("x"), json!(-1), json!(1.5), json!(null)]),
    ] {
        for value in values {
            add(
                &format!("{claim} = {value}"),
                signed(&hs256, &with(claim, value.clone()), Algorithm::HS256, key),
            );
        }
    }
    for claim in ["exp", "sub", "sid", "iat"] {
        add(
            &format!("without {claim}"),
            signed(&hs256, &without(claim), Algorithm::HS256, key),
        );
    }
    add(
        "claims are an array",
        signed(&hs256, &json!([good.clone()]), Algorithm::HS256, key),
    );
    add(
        "claims are a string",
        signed(&hs256, &json!("claims"), Algorithm::HS256, key),
    );
    // Tampering with a real token.
    let real = arena.alice.token.clone();
    let mut flipped = real.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    add(
        "a flipped signature byte",
        String::from_utf8(flipped).expect("ASCII"),
    );
    let parts: Vec<&str> = real.split('.').collect();
    let as_bob = b64(with("sub", json!(arena.bob.id.to_string()))
        .to_string()
        .as_bytes());
    add(
        "claims swapped for bob's",
        format!("{}.{as_bob}.{}", parts[0], parts[2]),
    );
    add("no signature", format!("{}.{}.", parts[0], parts[1]));
    add(
        "padded base64",
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
    );
    add(
        "standard base64",
        real.replace('-', "+").replace('_', "/") + "+/",
    );
    add(
        "a space inside",
        format!("{}. {}.{}", parts[0], parts[1], parts[2]),
    );
    add("a doubled token", format!("{real}{real}"));
    add("the real token and junk", format!("{real}.x"));
    add("over 4 KiB", "a".repeat(5000));
    add("60 KiB", format!("{real}{}", "b".repeat(60_000)));
    add("non-ASCII", format!("{real}é"));
    add("a NUL", format!("{real}\0"));
    tokens
}

/// Tokens signed with the right secret whose claims or header are odd but typed: the
/// contract does not fix their answer, only that it is not a 5xx.
pub fn odd_but_signed(arena: &Arena) -> Vec<(String, String)> {
    let key = test_secret();
    let now = rtchat::testing::unix_now() as i64;
    let good = claims_of(&arena.alice.token);
    let mut out = Vec::new();
    for header in [
        json!({"alg": "HS256", "crit": ["exp"]}),
        json!({"alg": "HS256", "kid": "../../../../dev/null"}),
        json!({"alg": "HS256", "jku": "http://evil.example/keys"}),
        json!({"alg": "HS256", "typ": "nonsense", "cty": "JWT"}),
    ] {
        out.push((
            format!("header {header}"),
            signed(&header, &good, Algorithm::HS256, key.as_bytes()),
        ));
    }
    let hs256 = json!({"alg": "HS256"});
    for (name, claims) in [
        (
            "a user that does not exist",
            json!({"sub": "999999999", "iat": now, "exp": now + 600, "sid": good["sid"]}),
        ),
        (
            "a session that does not exist",
            json!({"sub": good["sub"], "iat": now, "exp": now + 600, "sid": 999_999_999}),
        ),
        (
            "a negative session",
            json!({"sub": good["sub"], "iat": now, "exp": now + 600, "sid": -1}),
        ),
        (
            "i64::MAX user",
            json!({"sub": i64::MAX.to_string(), "iat": now, "exp": now + 600, "sid": good["sid"]}),
        ),
        (
            "expiring in 300 years",
            json!({"sub": good["sub"], "iat": now, "exp": 9_999_999_999u64, "sid": good["sid"]}),
        ),
        (
            "expired 30 s ago (within the leeway)",
            json!({"sub": good["sub"], "iat": now - 100, "exp": now - 30, "sid": good["sid"]}),
        ),
        (
            "issued in the future",
            json!({"sub": good["sub"], "iat": now + 86_400, "exp": now + 600, "sid": good["sid"]}),
        ),
        (
            "extra claims",
            json!({"sub": good["sub"], "iat": now, "exp": now + 600, "sid": good["sid"], "admin": true, "nbf": now + 86_400}),
        ),
    ] {
        out.push((
            name.to_string(),
            signed(&hs256, &claims, Algorithm::HS256, key.as_bytes()),
        ));
    }
    out
}
