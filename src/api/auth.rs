//! Who is calling: administrator tokens (`Authorization: Bearer TOKEN` or the console's
//! `yz_token` cookie), looked up by their hash, and the rights they carry. A change through
//! the JSON API (any method but GET/HEAD/OPTIONS) must carry the Bearer header: the cookie
//! is what a forged cross-site request would ride on. The console's
//! sign-in pages are in `console::auth`; the branch pages' signed links in `crate::access`.

use super::{ApiError, AppState, State};
use crate::access::token_hash;
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

/// The console's sign-in cookie, if the request carries one.
fn cookie_token(parts: &Parts) -> Option<String> {
    let cookies = parts
        .headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())?;
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == "yz_token")
        .map(|(_, v)| v.to_string())
}

/// The token a request carries, if any: the Bearer header, else the console's cookie.
pub fn request_token(parts: &Parts) -> Option<String> {
    bearer_token(parts).or_else(|| cookie_token(parts))
}

/// Look a token up.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let row = state
        .engine
        .store()
        .token_by_hash(&token_hash(token))
        .await?;
    match row {
        Some(r) => Ok(Principal {
            name: r.name,
            rights: r.rights,
        }),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown or revoked token",
        )),
    }
}

impl FromRequestParts<State> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        // A browser attaches the cookie to any request it sends here, including one a
        // page of another site makes it send; only reads may rest on it.
        let token = if parts.method.is_safe() {
            request_token(parts)
        } else {
            bearer_token(parts)
        };
        let Some(token) = token else {
            let message = if cookie_token(parts).is_some() {
                "changes through /api need `Authorization: Bearer TOKEN`; the console's sign-in cookie is not accepted for them"
            } else {
                "send `Authorization: Bearer TOKEN` (create one with `yanzhen token create NAME`)"
            };
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                message,
            ));
        };
        authenticate(state, &token).await
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
    fn a_bearer_header_is_the_token_and_wins_over_the_cookie() {
        let p = parts(&[
            (header::AUTHORIZATION, "Bearer  abc "),
            (header::COOKIE, "yz_token=from-cookie"),
        ]);
        assert_eq!(request_token(&p).as_deref(), Some("abc"));
    }

    #[test]
    fn the_console_cookie_is_found_among_others_and_no_other_cookie_counts() {
        let p = parts(&[(header::COOKIE, "theme=dark; yz_token=t0k; lang=zh")]);
        assert_eq!(request_token(&p).as_deref(), Some("t0k"));
        let p = parts(&[(header::COOKIE, "xyz_token=nope; token=nope")]);
        assert_eq!(request_token(&p), None);
        let p = parts(&[(header::AUTHORIZATION, "Basic dXNlcg==")]);
        assert_eq!(request_token(&p), None);
        assert_eq!(request_token(&parts(&[])), None);
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
