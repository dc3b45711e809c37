//! `/presence`: whether users are online, for the caller's chat partners only.

use std::collections::HashMap;

use hyper::Response;
use serde_json::json;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{ok, Ctx};
use crate::store::presence;

/// Ids per request (the contract's 1..100): a client asks for the members it shows, a page
/// at a time.
pub const MAX_PRESENCE_IDS: usize = 100;

/// `GET /presence?user_ids=1,2,3`: `{"presence": [{user_id, online, last_seen_at}, ...]}` in
/// the order asked (an id asked twice is answered twice). A user who shares no chat with the
/// caller, and an unknown id, read exactly as a user who never connected: nothing leaks.
pub async fn get_presence(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let ids = user_ids(ctx.query_str("user_ids").unwrap_or(""))?;
    let client = ctx.state.db().await?;
    let known: HashMap<i64, presence::Stored> = presence::visible(
        &client,
        caller.user_id,
        &ids,
        ctx.state.config.presence_grace,
    )
    .await?
    .into_iter()
    .map(|s| (s.user_id, s))
    .collect();
    let presence: Vec<_> = ids
        .iter()
        .map(|id| match known.get(id) {
            Some(s) if s.live => json!({"user_id": id, "online": true, "last_seen_at": null}),
            Some(s) => json!({
                "user_id": id,
                "online": false,
                "last_seen_at": s.last_seen_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            }),
            None => json!({"user_id": id, "online": false, "last_seen_at": null}),
        })
        .collect();
    ok(&json!({ "presence": presence }))
}

/// `1,2,3`: 1..=`MAX_PRESENCE_IDS` positive 64-bit ids, else 422 naming `user_ids`.
fn user_ids(raw: &str) -> ApiResult<Vec<i64>> {
    let invalid = || {
        ApiError::field(
            "user_ids",
            format!("must be 1 to {MAX_PRESENCE_IDS} comma-separated positive 64-bit integers"),
        )
    };
    // Counted before anything is parsed or kept: ten thousand commas cost one pass.
    if raw.is_empty() || raw.split(',').count() > MAX_PRESENCE_IDS {
        return Err(invalid());
    }
    raw.split(',')
        .map(|id| {
            id.trim()
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(invalid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_take_1_to_100_positive_ids_in_order() {
        assert_eq!(user_ids("3,1,3").unwrap(), vec![3, 1, 3]);
        assert_eq!(user_ids(" 7 ").unwrap(), vec![7]);
        let hundred = (1..=100).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(user_ids(&hundred.join(",")).unwrap().len(), 100);
        let many = (1..=101).map(|i| i.to_string()).collect::<Vec<_>>();
        for bad in [
            "",
            ",",
            "1,",
            "a",
            "-1",
            "0",
            "1.5",
            "9223372036854775808",
            "99999999999999999999999",
            &many.join(","),
            &",".repeat(10_000),
        ] {
            assert!(user_ids(bad).is_err(), "{bad:?}");
        }
    }
}
