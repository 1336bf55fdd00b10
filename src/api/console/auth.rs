//! Who may use the console: the sign-in form and its server-side session, sign-out, the
//! [`ConsoleUser`] extractor every console page takes, the admin check every change makes
//! and the CSRF check of every console form.
//!
//! Signing in opens a session: the cookie (`yz_session`, HttpOnly, SameSite=Strict, Secure
//! over https) holds a random id, the database a SHA-256 of it and the token's name, never
//! the token. A session ends after `[http] session_idle_minutes` without use, at sign-out,
//! and at once when its token is revoked or expires. Every attempt, refused or not, is in
//! the audit log with the client's address (never the token); attempts are rate-limited
//! per address (`guard::login_rate_limit`).

use super::ui::{Early, Ui};
use crate::access::token_hash;
use crate::api::guard::client_of;
use crate::api::{
    AppState, Principal, Rights, SESSION_COOKIE, State, authenticate, bearer_token, idle_ms,
    principal_of, session_cookie, session_id,
};
use crate::store::{AuditEntry, SessionRow};
use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request, State as Shared};
use axum::http::{HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

/// An administrator signed in to the console. Unlike [`Principal`], a missing or unknown
/// token or session is answered with 303 to the sign-in page, not a JSON 401.
#[derive(Debug, Clone)]
pub struct ConsoleUser(pub Principal);

impl FromRequestParts<State> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        if bearer_token(parts).is_none() && session_id(parts).is_none() {
            return Err(to_login());
        }
        match principal_of(state, parts, true).await {
            Ok(p) => Ok(ConsoleUser(p)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(to_login()),
            Err(e) => {
                tracing::error!(error = %e.message, "console sign-in check failed");
                Err(Ui::new(state, None).message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "暂时无法登录",
                    "检查令牌时出错，详见守护进程日志。",
                ))
            }
        }
    }
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

impl Ui<'_> {
    /// 403 unless the signed-in token may change things.
    pub(super) fn require_admin(&self) -> Early<()> {
        match self.user {
            Some(p) if p.rights == Rights::Admin => Ok(()),
            Some(p) => Err(Box::new(self.message(
                StatusCode::FORBIDDEN,
                "没有修改权限",
                &format!(
                    "令牌「{}」是只读令牌，只能查看；修改需要管理员令牌。",
                    p.name
                ),
            ))),
            None => Err(Box::new(to_login())),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LoginForm {
    token: String,
}

pub(super) async fn login_form(Shared(state): Shared<State>) -> Response {
    let no_admin = no_admin_token(&state).await;
    Ui::new(&state, None).page(
        StatusCode::OK,
        "login.html",
        json!({"error": null, "no_admin": no_admin}),
    )
}

/// Whether no administrator token can sign in yet (the sign-in page then says how to
/// create one); a store error counts as "there is one", to say nothing wrong.
async fn no_admin_token(state: &State) -> bool {
    let now = state.engine.clock().now().timestamp_millis();
    match crate::api::admin_token_exists(state.engine.store().as_ref(), now).await {
        Ok(exists) => !exists,
        Err(e) => {
            tracing::warn!(error = %e, "could not check for administrator tokens");
            false
        }
    }
}

/// The client's address and whether the request came over https.
#[derive(Debug, Clone)]
pub(super) struct Client {
    address: String,
    https: bool,
}

impl FromRequestParts<State> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let trusted = &state.engine.catalog().config.http.trusted_proxies;
        let (ip, https) = client_of(&parts.extensions, &parts.headers, trusted);
        Ok(Client {
            address: ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "unknown".into()),
            https,
        })
    }
}

/// A sign-in attempt's audit entry: who (the token's name when known, else the address),
/// from where, and how it ended; never the token.
fn sign_in_audit(at: i64, client: &Client, name: Option<&str>, outcome: &str) -> AuditEntry {
    let (actor, action) = match (name, outcome) {
        (Some(n), "ok") => (format!("token:{n}"), "console.sign_in"),
        (Some(n), _) => (format!("token:{n}"), "console.sign_in_refused"),
        (None, _) => (
            format!("address:{}", client.address),
            "console.sign_in_refused",
        ),
    };
    AuditEntry {
        at,
        actor,
        action: action.into(),
        subject: name.map_or_else(|| "token:?".to_string(), |n| format!("token:{n}")),
        detail_json: json!({"address": client.address, "outcome": outcome}).to_string(),
    }
}

pub(super) async fn login(
    Shared(state): Shared<State>,
    client: Client,
    Form(form): Form<LoginForm>,
) -> Response {
    let ui = Ui::new(&state, None);
    let token = form.token.trim();
    let no_admin = no_admin_token(&state).await;
    let retry = |error: &str| {
        ui.page(
            StatusCode::OK,
            "login.html",
            json!({"error": error, "no_admin": no_admin}),
        )
    };
    let store = state.engine.store();
    let now = state.engine.clock().now().timestamp_millis();
    let refused = |name: Option<String>, outcome: &'static str| {
        let entry = sign_in_audit(now, &client, name.as_deref(), outcome);
        async move {
            if let Err(e) = store.append_audit(entry).await {
                tracing::error!(error = %e, "could not record a refused sign-in");
            }
        }
    };
    if token.is_empty() {
        refused(None, "empty").await;
        return retry("请输入访问令牌。");
    }
    let principal = match authenticate(&state, token).await {
        Ok(p) => p,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            // An expired token is still known by its hash: say whose it was.
            let name = store
                .token_by_hash(&token_hash(token))
                .await
                .ok()
                .flatten()
                .map(|t| t.name);
            let outcome = if name.is_some() { "expired" } else { "unknown" };
            tracing::warn!(address = %client.address, outcome, "console sign-in refused");
            refused(name, outcome).await;
            return retry("令牌无效、已过期或已被吊销。");
        }
        Err(e) => {
            tracing::error!(error = %e.message, "console sign-in failed");
            return retry("检查令牌时出错，请稍后再试。");
        }
    };
    let id = hex::encode(rand::random::<[u8; 32]>());
    let session = SessionRow {
        id_hash: token_hash(&id),
        token_name: principal.name.clone(),
        created_at: now,
        expires_at: now.saturating_add(idle_ms(&state)),
        last_seen: now,
    };
    let entry = sign_in_audit(now, &client, Some(&principal.name), "ok");
    if let Err(e) = store.create_session(session, entry).await {
        tracing::error!(error = %e, "could not open a console session");
        return retry("登录时出错，请稍后再试。");
    }
    if let Err(e) = store.delete_expired_sessions(now).await {
        tracing::warn!(error = %e, "could not remove expired console sessions");
    }
    tracing::info!(token = %principal.name, address = %client.address, "console sign-in");
    let secure = state.engine.catalog().config.http.secure_cookies || client.https;
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
    // Browsers of earlier versions keep the raw token in this cookie: drop it.
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("yz_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}

pub(super) async fn logout(
    Shared(state): Shared<State>,
    client: Client,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(id) = session_cookie(&headers) {
        let store = state.engine.store();
        let hash = token_hash(&id);
        let now = state.engine.clock().now().timestamp_millis();
        let name = store
            .session(&hash, now)
            .await
            .ok()
            .flatten()
            .map(|(s, _)| s.token_name);
        if let Err(e) = store.delete_session(&hash).await {
            tracing::error!(error = %e, "could not end a console session");
        } else if let Some(name) = name {
            let entry = AuditEntry {
                at: now,
                actor: format!("token:{name}"),
                action: "console.sign_out".into(),
                subject: format!("token:{name}"),
                detail_json: json!({"address": client.address}).to_string(),
            };
            if let Err(e) = store.append_audit(entry).await {
                tracing::error!(error = %e, "could not record a sign-out");
            }
        }
    }
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("yz_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}

/// The field of a console form that carries the session's CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfField {
    csrf: String,
}

/// Middleware: a console POST that rests on the session cookie must carry the session's
/// CSRF token (the hidden `csrf` field every console form has), or it gets a 403 page and
/// changes nothing. A request with a Bearer header needs none (a browser never adds one
/// on its own), nor does one with no session (it is sent to sign in), nor the sign-in
/// form itself (it has no session yet; the same-origin check guards it).
pub async fn csrf_check(Shared(state): Shared<State>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != Method::POST || !path.starts_with("/console/") || path == "/console/login" {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // A Bearer token is what the request then rests on (`principal_of` takes it first);
    // any other Authorization header does not excuse the cookie from its CSRF token.
    let Some(id) = session_id(&parts).filter(|_| bearer_token(&parts).is_none()) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    // Every console form is URL-encoded; anything else (a cross-site `text/plain` form)
    // is refused here, as each page's form reader would.
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let limit = state.engine.catalog().config.http.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let probe = Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes.clone()));
    let field = match probe {
        Ok(probe) => Form::<CsrfField>::from_request(probe, &())
            .await
            .map(|Form(f)| f.csrf)
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    if !state.links.csrf_ok(&id, &field) {
        tracing::warn!(path = %parts.uri.path(), "console form without its CSRF token refused");
        return forged(&state);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The 403 page of a console form without its session's CSRF token.
fn forged(state: &AppState) -> Response {
    super::error_page(
        state,
        false,
        StatusCode::FORBIDDEN,
        "已拒绝未经验证的提交",
        "这个表单缺少本次登录的校验码（可能来自其他网站，或页面已过期），为防止伪造操作，已拒绝，未做任何修改。请刷新页面后重新操作。",
    )
}
