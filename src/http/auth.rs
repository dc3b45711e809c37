//! `/auth/*`: register, login (JSON or the OAuth2 password form), refresh, logout, me.

use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{new_refresh_token, refresh_token_hash};
use crate::error::{ApiError, ApiResult, Body, FieldError};
use crate::http::{created, no_content, ok, Ctx};
use crate::identity::{display_email, email_key, is_hidden, name_has_hidden};
use crate::store::{sessions, users};

/// Longest email accepted (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;
/// Display names: 1..=64 characters after trimming.
const MAX_NAME_CHARS: usize = 64;
/// Passwords: 8..=128 characters; the upper bound keeps argon2's input reasonable.
const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 128;
/// Longest refresh token accepted before any lookup (ours are 64 hex characters).
const MAX_REFRESH_TOKEN_LEN: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    name: String,
    password: String,
}

/// A trimmed email, or the reason it is not one.
///
/// Length and control characters are judged on the value as sent, before trimming, so that
/// `openapi.yaml` can state the rule exactly (`maxLength` and `pattern` see the raw string).
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if raw.chars().count() > MAX_EMAIL_CHARS {
        return Err("must be at most 254 characters");
    }
    let email = raw.trim();
    let (local, domain) = email.split_once('@').ok_or("must be an email address")?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("must be an email address");
    }
    if email.chars().any(char::is_whitespace) {
        return Err("must not contain spaces");
    }
    Ok(email.to_string())
}

/// `POST /auth/register`
pub async fn register(ctx: Ctx) -> ApiResult<Response<Body>> {
    let body: RegisterBody = ctx.json()?;
    let mut errors = Vec::new();
    let email = match normalize_email(&body.email) {
        // Invisible characters would make two addresses that look the same two accounts.
        Ok(email) if email.chars().any(is_hidden) => {
            errors.push(FieldError::new(
                "email",
                "must not contain invisible formatting characters",
            ));
            String::new()
        }
        Ok(email) => email,
        Err(why) => {
            errors.push(FieldError::new("email", why));
            String::new()
        }
    };
    // Judged as sent (see `normalize_email`), stored trimmed.
    let name = body.name.trim().to_string();
    if name.is_empty() || body.name.chars().count() > MAX_NAME_CHARS || name_has_hidden(&body.name)
    {
        errors.push(FieldError::new(
            "name",
            "must be 1..64 characters, not blank, no control or invisible formatting characters",
        ));
    }
    let password_chars = body.password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password_chars) {
        errors.push(FieldError::new("password", "must be 8..128 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }

    let key = email_key(&email);
    ctx.state
        .limits
        .register
        .check(&crate::limits::addr_key(ctx.client_addr))?;
    ctx.state.limits.register_email.check(&key)?;
    let hash = ctx.state.auth.hash_password(body.password).await?;
    let client = ctx.state.db().await?;
    let user = users::register(&client, &display_email(&email), &key, &name, &hash).await?;
    ctx.log_user(user.id);
    created(&user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

/// `POST /auth/login`: JSON `{email, password}` or the OAuth2 password form.
pub async fn login(ctx: Ctx) -> ApiResult<Response<Body>> {
    let (email, password) = if ctx.content_type_is(&["application/x-www-form-urlencoded"]) {
        let form: Vec<(String, String)> = form_urlencoded::parse(&ctx.body).into_owned().collect();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        // RFC 6749 4.3: the password grant is the only one there is.
        if field("grant_type").is_some_and(|grant| grant != "password") {
            return Err(ApiError::field("grant_type", "must be `password`"));
        }
        match (field("username"), field("password")) {
            (Some(u), Some(p)) => (u, p),
            (None, _) => return Err(ApiError::field("username", "is required")),
            (_, None) => return Err(ApiError::field("password", "is required")),
        }
    } else {
        let body: LoginBody = ctx.json()?;
        (body.email, body.password)
    };
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ApiError::InvalidCredentials);
    }
    let email = normalize_email(&email).map_err(|_| ApiError::InvalidCredentials)?;

    let key = email_key(&email);

    let mut client = ctx.state.db().await?;
    // Counted as a failure until the password proves right; refused before any hashing.
    let ticket = ctx
        .state
        .limits
        .login_admit(&mut client, &key, ctx.client_addr)
        .await?;
    // By key, or for the accounts from before keys by the exact address (see `identity`).
    let (user_id, hash) = match users::find_login(&client, &key, &email).await? {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    drop(client); // no connection held across the slow hash
    let matches = ctx.state.auth.verify_password(password, hash).await?;
    let user_id = match (matches, user_id) {
        (true, Some(id)) => id,
        _ => {
            ctx.state.limits.login_failed(ticket);
            return Err(ApiError::InvalidCredentials);
        }
    };

    let mut client = ctx.state.db().await?;
    let tx = client.transaction().await?;
    ctx.state.limits.login_succeeded(&tx, &ticket).await?;
    let session_id = sessions::create(&tx, user_id, ctx.state.config.refresh_ttl).await?;
    let refresh_token = store_refresh_token(&tx, session_id).await?;
    tx.commit().await?;
    token_pair(&ctx, user_id, session_id, refresh_token)
}

/// A new refresh token of `session_id`, stored by its hash.
async fn store_refresh_token(
    client: &impl deadpool_postgres::GenericClient,
    session_id: i64,
) -> ApiResult<String> {
    let (token, hash) = new_refresh_token();
    sessions::add_refresh_token(client, session_id, &hash).await?;
    Ok(token)
}

fn token_pair(
    ctx: &Ctx,
    user_id: i64,
    session_id: i64,
    refresh_token: String,
) -> ApiResult<Response<Body>> {
    ctx.log_user(user_id);
    let access_token = ctx.state.auth.issue(user_id, session_id)?;
    ok(&json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": ctx.state.auth.ttl().as_secs(),
        "refresh_token": refresh_token,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// `POST /auth/refresh`: rotates the refresh token; a used one presented again revokes the
/// whole session.
pub async fn refresh(ctx: Ctx) -> ApiResult<Response<Body>> {
    let body: RefreshBody = ctx.json()?;
    if body.refresh_token.is_empty() || body.refresh_token.len() > MAX_REFRESH_TOKEN_LEN {
        return Err(ApiError::Unauthorized("the refresh token is invalid"));
    }
    let hash = refresh_token_hash(&body.refresh_token);
    let mut client = ctx.state.db().await?;
    let tx = client.transaction().await?;
    let Some(refreshed) = sessions::use_refresh_token(&tx, &hash).await? else {
        // Unknown, or used before: a used token presented again means it was stolen (or the
        // client is broken); either way the session ends.
        let revoked = sessions::revoke_by_refresh_token(&tx, &hash).await?;
        tx.commit().await?;
        if !revoked.is_empty() {
            tracing::warn!("a used refresh token was presented again: session revoked");
            ctx.state.delivery.revoke_sessions(&revoked);
        }
        return Err(ApiError::Unauthorized("the refresh token is invalid"));
    };
    let (session_id, user_id) = (refreshed.session_id, refreshed.user_id);
    if !refreshed.live {
        tx.commit().await?;
        return Err(ApiError::Unauthorized("the session has ended"));
    }
    let refresh_token = store_refresh_token(&tx, session_id).await?;
    tx.commit().await?;
    token_pair(&ctx, user_id, session_id, refresh_token)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutBody {
    #[serde(default)]
    all: bool,
}

/// `POST /auth/logout`: ends this session, or with `{"all": true}` all of the user's.
pub async fn logout(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let body: LogoutBody = if ctx.body.iter().all(u8::is_ascii_whitespace) {
        LogoutBody::default()
    } else {
        ctx.json()?
    };
    let client = ctx.state.db().await?;
    let mut ended = sessions::revoke(&client, caller.user_id, caller.session_id, body.all).await?;
    // This session's tokens die even if it was revoked before (by a reuse detection).
    ended.push(caller.session_id);
    ctx.state.delivery.revoke_sessions(&ended);
    no_content()
}

/// `GET /auth/me`
pub async fn me(ctx: Ctx) -> ApiResult<Response<Body>> {
    let caller = ctx.caller()?;
    let client = ctx.state.db().await?;
    let user = users::get(&client, caller.user_id)
        .await?
        .ok_or(ApiError::Unauthorized("the token's user no longer exists"))?;
    ok(&user)
}
