//! What the contract says about a request body, mirrored for the body fuzzing: the fields
//! each endpoint takes and their JSON types, how the server reads a Content-Type, and the
//! answer a body must get (413, 415, 400 `invalid_json`, 422 naming the field) as far as
//! its shape decides it.

use serde_json::Value;

use super::expect_error;
use crate::support::Reply;

/// The body limit of the contract.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Str,
    Bool,
    Int,
    Ints,
    OneOf(&'static [&'static str]),
}

/// One field of a request body, as the contract types it.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub nullable: bool,
}

pub const fn field(name: &'static str, kind: Kind, required: bool, nullable: bool) -> Field {
    Field {
        name,
        kind,
        required,
        nullable,
    }
}

// The bodies' fields, as the contract types them.
use Kind::*;
pub const REGISTER: &[Field] = &[
    field("email", Str, true, false),
    field("name", Str, true, false),
    field("password", Str, true, false),
];
pub const LOGIN: &[Field] = &[
    field("email", Str, true, false),
    field("password", Str, true, false),
];
pub const REFRESH: &[Field] = &[field("refresh_token", Str, true, false)];
pub const LOGOUT: &[Field] = &[field("all", Bool, false, false)];
pub const CREATE_CHAT: &[Field] = &[
    field("type", OneOf(&["private", "group"]), true, false),
    field("title", Str, false, true),
    field("participant_ids", Ints, true, false),
];
pub const UPDATE_CHAT: &[Field] = &[
    field("title", Str, false, true),
    // `null` is refused by the handler, with the same 422 naming the field.
    field("is_active", Bool, false, false),
];
pub const ADD_MEMBERS: &[Field] = &[field("user_ids", Ints, true, false)];
pub const SEND: &[Field] = &[
    field("text", Str, true, false),
    field("client_id", Str, false, true),
    field("reply_to", Int, false, true),
    field("mentions", Ints, false, false),
];
// Either may be left out (leaving out both is the handler's 422); neither takes `null`.
pub const EDIT: &[Field] = &[
    field("text", Str, false, false),
    field("mentions", Ints, false, false),
];
pub const READ: &[Field] = &[field("message_id", Int, true, false)];

/// Who sends the request.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Caller {
    Nobody,
    Alice,
    /// A user whose session each successful logout ends (then logs in again).
    Leaver,
}

pub struct Endpoint {
    pub name: &'static str,
    pub method: reqwest::Method,
    pub path: String,
    pub caller: Caller,
    pub fields: &'static [Field],
    /// A valid body; `email` is made unique per case for register.
    pub template: Value,
}

/// What the contract says a case must get.
#[derive(Clone, Debug)]
pub enum Expect {
    /// This status, this code, and for 422 an error naming one of these fields.
    Error(u16, &'static str, Vec<String>),
    /// Exactly this status (a success).
    Status(u16),
    OneOf(Vec<u16>),
    /// Some 4xx.
    Failure,
    /// Anything below 500 (well-typed values: the handler decides).
    Any,
}

/// How the server reads a Content-Type, mirrored: JSON (or none), the login form, or other.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Ct {
    Json,
    Form,
    Other,
}

pub fn classify(content_type: Option<&[u8]>) -> Ct {
    let Some(raw) = content_type else {
        return Ct::Json; // no Content-Type: read as JSON
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Ct::Other;
    };
    if !text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) || b == b'\t')
    {
        return Ct::Other;
    }
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ct::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Ct::Form
    } else {
        Ct::Other
    }
}

/// A 64-bit integer as JSON has them: `42`, and `42.0` too (one number type in JSON and
/// in JSON Schema).
fn is_integer(value: &Value) -> bool {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    value.as_i64().is_some()
        || value
            .as_f64()
            .is_some_and(|f| value.is_f64() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f))
}

/// Whether a JSON value has the type `field` takes.
fn fits(field: &Field, value: &Value) -> bool {
    if value.is_null() {
        return field.nullable;
    }
    match field.kind {
        Kind::Str => value.is_string(),
        Kind::Bool => value.is_boolean(),
        Kind::Int => is_integer(value),
        Kind::Ints => value
            .as_array()
            .is_some_and(|items| items.iter().all(is_integer)),
        // serde also reads a unit variant from `{"variant": null}`.
        Kind::OneOf(names) => {
            value.as_str().is_some_and(|s| names.contains(&s))
                || value.as_object().is_some_and(|m| {
                    m.len() == 1
                        && m.iter()
                            .all(|(k, v)| names.contains(&k.as_str()) && v.is_null())
                })
        }
    }
}

/// The contract's answer for a body, as far as its shape decides it.
pub fn oracle(
    ep: &Endpoint,
    content_type: Option<&[u8]>,
    body: &[u8],
    duplicate: Option<&str>,
) -> Expect {
    if body.len() > MAX_BODY {
        return Expect::Error(413, "payload_too_large", vec![]);
    }
    let blank = body.iter().all(u8::is_ascii_whitespace);
    if ep.caller == Caller::Leaver && blank {
        return Expect::Status(204); // logout's body is optional
    }
    match classify(content_type) {
        Ct::Form if ep.name == "login" => return form_oracle(body),
        Ct::Form | Ct::Other => return Expect::Error(415, "unsupported_media_type", vec![]),
        Ct::Json => {}
    }
    if blank || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        return Expect::Error(400, "invalid_json", vec![]);
    }
    // Syntax serde only finds when it reads values (numbers out of range, lone surrogates,
    // invalid UTF-8 in strings), or nesting too deep to read into a value.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Expect::Failure;
    };
    let Some(object) = value.as_object() else {
        return Expect::Error(422, "validation_error", vec!["body".into()]);
    };
    let mut problems: Vec<String> = Vec::new();
    if let Some(key) = duplicate {
        problems.push(key.to_string());
    }
    for (key, value) in object {
        match ep.fields.iter().find(|f| f.name == key) {
            None => problems.push(key.clone()),
            Some(f) if !fits(f, value) => problems.push(key.clone()),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        problems = ep
            .fields
            .iter()
            .filter(|f| f.required && !object.contains_key(f.name))
            .map(|f| f.name.to_string())
            .collect();
    }
    if problems.is_empty() {
        return Expect::Any;
    }
    // serde names a field by quoting it in backticks: a key with its own backtick is named
    // only in part.
    if problems.iter().any(|p| p.contains('`')) {
        problems.clear();
    }
    Expect::Error(422, "validation_error", problems)
}

/// The login form's answer: 422 naming what is missing or wrong, else 200 or 401.
pub fn form_oracle(body: &[u8]) -> Expect {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if first("grant_type").is_some_and(|g| g != "password") {
        return Expect::Error(422, "validation_error", vec!["grant_type".into()]);
    }
    match (first("username"), first("password")) {
        (None, _) => Expect::Error(422, "validation_error", vec!["username".into()]),
        (_, None) => Expect::Error(422, "validation_error", vec!["password".into()]),
        _ => Expect::OneOf(vec![200, 401]),
    }
}

pub fn check(what: &str, r: &Reply, expect: &Expect) {
    match expect {
        Expect::Error(status, code, fields) => {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            expect_error(what, r, *status, code, &fields);
        }
        Expect::Status(status) => assert_eq!(r.status, *status, "{what}: {r:?}"),
        Expect::OneOf(statuses) => assert!(statuses.contains(&r.status), "{what}: {r:?}"),
        Expect::Failure => assert!((400..500).contains(&r.status), "{what}: {r:?}"),
        Expect::Any => {}
    }
}
