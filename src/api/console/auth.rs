//! Who may use the console: the sign-in form and cookie, sign-out, the [`ConsoleUser`]
//! extractor every console page takes, and the admin check every change makes.

use super::ui::{Early, Ui};
use crate::api::{Principal, Rights, State, authenticate, request_token};
use axum::extract::{Form, FromRequestParts, State as Shared};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

/// The sign-in cookie.
const COOKIE: &str = "yz_token";

/// An administrator signed in to the console. Unlike [`Principal`], a missing or unknown
/// token is answered with 303 to the sign-in page, not a JSON 401.
#[derive(Debug, Clone)]
pub struct ConsoleUser(pub Principal);

impl FromRequestParts<State> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let Some(token) = request_token(parts) else {
            return Err(to_login());
        };
        match authenticate(state, &token).await {
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
    Ui::new(&state, None).page(StatusCode::OK, "login.html", json!({"error": null}))
}

pub(super) async fn login(Shared(state): Shared<State>, Form(form): Form<LoginForm>) -> Response {
    let ui = Ui::new(&state, None);
    let token = form.token.trim();
    let retry = |error: &str| ui.page(StatusCode::OK, "login.html", json!({"error": error}));
    if token.is_empty() {
        return retry("请输入访问令牌。");
    }
    match authenticate(&state, token).await {
        Ok(p) => {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            let Ok(value) = HeaderValue::from_str(&cookie) else {
                return retry("令牌无效或已被吊销。");
            };
            tracing::info!(token = %p.name, "console sign-in");
            let mut resp = Redirect::to("/console").into_response();
            resp.headers_mut().insert(header::SET_COOKIE, value);
            resp
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => retry("令牌无效或已被吊销。"),
        Err(e) => {
            tracing::error!(error = %e.message, "console sign-in failed");
            retry("检查令牌时出错，请稍后再试。")
        }
    }
}

pub(super) async fn logout() -> Response {
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("yz_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}
