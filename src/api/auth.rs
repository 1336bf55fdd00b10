//! Who is calling: administrator tokens (`Authorization: Bearer TOKEN`), looked up by their
//! hash, refused once revoked or expired, and the console's server-side sessions (the
//! `yz_session` cookie holds a random session id, never the token; a session lives while
//! its token does and it is used within `[http] session_idle_minutes`). A change through
//! the JSON API (any method but GET/HEAD/OPTIONS) must carry the Bearer header: the cookie
//! is what a forged cross-site request would ride on. The console's sign-in pages are in
//! `console::auth`; the branch pages' signed links in `crate::access`.

use super::{ApiError, AppState, State};
use crate::access::token_hash;
use crate::store::TokenRow;
use axum::extract::FromRequestParts;
use axum::http::{StatusCode, header, request::Parts};

pub use crate::core::state::Rights;

/// An authenticated administrator of the JSON API (from `Authorization: Bearer TOKEN`, or,
/// for a read, the console's `yz_token` cookie). Extracting it answers 401 when the token
/// is missing or unknown, or when a change rests on the cookie alone.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token name.
    pub name: String,
    /// Its rights.
    pub rights: Rights,
    /// The CSRF token of the console session the request came in, if it came in one
    /// (the console's forms carry it).
    pub csrf: Option<String>,
}

impl Principal {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }

    /// 403 unless this token may change things.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.rights {
            Rights::Admin => Ok(()),
            Rights::Read => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token `{}` may only read; this needs an admin token",
                    self.name
                ),
            )),
        }
    }
}

/// The token of an `Authorization` header in the Bearer scheme, whose name is matched
/// without regard to case (RFC 9110: `bearer x` and `BEARER x` are `Bearer x`).
pub fn bearer_token(parts: &Parts) -> Option<String> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The console session cookie.
pub const SESSION_COOKIE: &str = "yz_session";

/// How often, at most, a session's idle expiry and a token's "last used" are written
/// (milliseconds): not on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The console's session id, if the request carries the session cookie.
pub fn session_id(parts: &Parts) -> Option<String> {
    session_cookie(&parts.headers)
}

/// The session id of the session cookie among these headers.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for line in cookies {
        let found = line
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, v)| *k == SESSION_COOKIE && !v.is_empty());
        if let Some((_, v)) = found {
            return Some(v.to_string());
        }
    }
    None
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Refuse a token past its expiry, note its use, and make the principal.
async fn accept(
    state: &AppState,
    row: TokenRow,
    now: i64,
    csrf: Option<String>,
) -> Result<Principal, ApiError> {
    if row.expired(now) {
        return Err(unauthorized(format!(
            "token `{}` has expired; create a new one with `yanzhen token create`",
            row.name
        )));
    }
    if row
        .last_used_at
        .is_none_or(|t| now.saturating_sub(t) >= TOUCH_EVERY_MS)
        && let Err(e) = state.engine.store().token_used(&row.name, now).await
    {
        // Only bookkeeping: the request goes on.
        tracing::warn!(token = %row.name, error = %e, "could not record the token's use");
    }
    Ok(Principal {
        name: row.name,
        rights: row.rights,
        csrf,
    })
}

/// Whether any administrator token can sign in at `now` (not revoked, not expired): while
/// none can, `serve` and the sign-in page say how to create one.
pub async fn admin_token_exists(
    store: &dyn crate::store::Store,
    now: i64,
) -> Result<bool, crate::store::StoreError> {
    Ok(store
        .tokens()
        .await?
        .iter()
        .any(|t| t.rights == Rights::Admin && t.revoked_at.is_none() && !t.expired(now)))
}

/// The console's address for people: `notify.link_base` when set (what links in messages
/// use), else the address the daemon listens on (an unspecified address as localhost).
pub fn console_url(
    link_base: Option<&str>,
    listening: Option<std::net::SocketAddr>,
) -> Option<String> {
    if let Some(base) = link_base.map(str::trim).filter(|b| !b.is_empty()) {
        return Some(format!("{}/console", base.trim_end_matches('/')));
    }
    let mut addr = listening?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(format!("http://{addr}/console"))
}

/// Look a token up: unknown, revoked and expired tokens are 401.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let row = state
        .engine
        .store()
        .token_by_hash(&token_hash(token))
        .await?;
    let now = state.engine.clock().now().timestamp_millis();
    match row {
        Some(r) => accept(state, r, now, None).await,
        None => Err(unauthorized("unknown or revoked token")),
    }
}

/// Look a console session up by the id its cookie holds: 401 once it has expired, was
/// ended by sign-out, or its token was revoked or has expired. A use moves its idle
/// expiry on.
pub async fn session_principal(state: &AppState, id: &str) -> Result<Principal, ApiError> {
    let store = state.engine.store();
    let hash = token_hash(id);
    let now = state.engine.clock().now().timestamp_millis();
    let Some((session, token)) = store.session(&hash, now).await? else {
        return Err(unauthorized("the console session has ended; sign in again"));
    };
    if now.saturating_sub(session.last_seen) >= TOUCH_EVERY_MS {
        let idle = idle_ms(state);
        if let Err(e) = store
            .touch_session(&hash, now, now.saturating_add(idle))
            .await
        {
            tracing::warn!(token = %token.name, error = %e, "could not extend the console session");
        }
    }
    accept(state, token, now, Some(state.links.csrf_token(id))).await
}

/// A session's idle lifetime in milliseconds.
pub fn idle_ms(state: &AppState) -> i64 {
    let minutes = state.engine.catalog().config.http.session_idle_minutes;
    i64::try_from(minutes.saturating_mul(60_000)).unwrap_or(i64::MAX)
}

/// The caller of a request: its Bearer token, else, when `cookie_ok`, its console
/// session.
pub async fn principal_of(
    state: &AppState,
    parts: &Parts,
    cookie_ok: bool,
) -> Result<Principal, ApiError> {
    if let Some(token) = bearer_token(parts) {
        return authenticate(state, &token).await;
    }
    match session_id(parts) {
        Some(id) if cookie_ok => session_principal(state, &id).await,
        Some(_) => Err(unauthorized(
            "changes through /api need `Authorization: Bearer TOKEN`; the console's sign-in cookie is not accepted for them",
        )),
        None => Err(unauthorized(
            "send `Authorization: Bearer TOKEN` (create one with `yanzhen token create NAME`)",
        )),
    }
}

impl FromRequestParts<State> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        // A browser attaches the cookie to any request it sends here, including one a
        // page of another site makes it send; only reads may rest on it.
        principal_of(state, parts, parts.method.is_safe()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(header::HeaderName, &str)]) -> Parts {
        let mut req = axum::http::Request::builder();
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_no_other_cookie_counts() {
        let p = parts(&[(header::COOKIE, "theme=dark; yz_session=s1d; lang=zh")]);
        assert_eq!(session_id(&p).as_deref(), Some("s1d"));
        let p = parts(&[(
            header::COOKIE,
            "xyz_session=nope; yz_token=old; yz_session=",
        )]);
        assert_eq!(session_id(&p), None);
        assert_eq!(session_id(&parts(&[])), None);
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case_and_needs_a_token() {
        for value in ["bearer abc", "BEARER abc", "BeArEr\tabc", "  Bearer abc"] {
            let p = parts(&[(header::AUTHORIZATION, value)]);
            assert_eq!(bearer_token(&p).as_deref(), Some("abc"), "{value:?}");
        }
        for value in ["Bearer", "Bearer   ", "Bearerabc", "Token abc"] {
            let p = parts(&[(header::AUTHORIZATION, value)]);
            assert_eq!(bearer_token(&p), None, "{value:?}");
        }
    }
}

#[cfg(test)]
mod console_url_tests {
    use super::console_url;

    #[test]
    fn console_url_prefers_link_base_and_shows_an_unspecified_bind_as_localhost() {
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(
            console_url(Some("https://y.example.gov.cn/"), Some(any)).as_deref(),
            Some("https://y.example.gov.cn/console")
        );
        assert_eq!(
            console_url(None, Some(any)).as_deref(),
            Some("http://127.0.0.1:8080/console")
        );
        assert_eq!(console_url(None, None), None);
    }
}
