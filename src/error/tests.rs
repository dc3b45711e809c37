//! Unit tests of the HTTP edge: every component error keeps its status, code, detail and headers.

use super::*;

#[test]
fn busy_password_hashers_are_a_503_server_busy_with_retry_after() {
    let e = ApiError::from(crate::auth::CredentialError::Busy);
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.code(), "server_busy");
    assert_eq!(e.detail(), HASHERS_BUSY);
    assert!(e.into_response().headers().contains_key(RETRY_AFTER));
}

/// The components' own errors keep the answers they gave when they built `ApiError`s.
#[test]
fn component_errors_keep_their_status_code_detail_and_headers() {
    use crate::auth::TokenError;
    use crate::revocation::Untrusted;
    let limited = ApiError::from(crate::limits::RateLimited(Duration::from_millis(1500)));
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.into_response().headers()[RETRY_AFTER], "2");
    for (token, detail) in [
        (TokenError::TooLong, "the token is too long"),
        (TokenError::Expired, "the token has expired"),
        (TokenError::Invalid, "the token is invalid"),
    ] {
        let e = ApiError::from(token);
        assert_eq!((e.code(), e.detail().as_str()), ("unauthorized", detail));
        assert!(e.into_response().headers().contains_key(WWW_AUTHENTICATE));
    }
    let ended = ApiError::from(Untrusted::Ended);
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ended.detail(), "the session has ended");
    assert!(matches!(
        ApiError::from(Untrusted::CatchingUp),
        ApiError::CatchingUp
    ));
    let busy = ApiError::from(crate::gate::TurnTimedOut);
    assert_eq!(
        (busy.code(), busy.detail().as_str()),
        ("server_busy", CHAT_BUSY)
    );
    let bug = ApiError::from(crate::auth::CredentialError::Bug("x".into()));
    assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
