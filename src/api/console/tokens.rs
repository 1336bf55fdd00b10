//! The tokens page (`/console/tokens`, administrators only): every token with its rights,
//! expiry, last use and state; creating one (shown once) and revoking one (its console
//! sessions end at once), each audited as the signed-in administrator.

use super::auth::ConsoleUser;
use super::ui::Ui;
use crate::access::{check_token_name, create_token, revoke_token};
use crate::api::State;
use crate::core::state::Rights;
use crate::store::StoreError;
use axum::extract::{Form, Path, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

fn rights_zh(r: Rights) -> &'static str {
    match r {
        Rights::Admin => "管理员",
        Rights::Read => "只读",
    }
}

async fn render(
    ui: &Ui<'_>,
    status: StatusCode,
    created: Option<serde_json::Value>,
    error: Option<String>,
) -> Response {
    let tokens = match ui.state.engine.store().tokens().await {
        Ok(t) => t,
        Err(e) => return ui.store_fail(e),
    };
    let now = ui.now().timestamp_millis();
    let rows: Vec<serde_json::Value> = tokens
        .iter()
        .map(|t| {
            let (state, state_zh) = if t.revoked_at.is_some() {
                ("revoked", "已吊销")
            } else if t.expired(now) {
                ("expired", "已过期")
            } else {
                ("active", "有效")
            };
            json!({
                "name": t.name, "rights_zh": rights_zh(t.rights), "created": ui.at(t.created_at),
                "expires": t.expires_at.map(|x| ui.at(x)), "revoked": t.revoked_at.map(|x| ui.at(x)),
                "last_used": t.last_used_at.map(|x| ui.at(x)), "state": state, "state_zh": state_zh,
            })
        })
        .collect();
    ui.page(
        status,
        "tokens.html",
        json!({"active": "tokens", "tokens": rows, "created": created, "error": error}),
    )
}

pub(super) async fn tokens_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    render(&ui, StatusCode::OK, None, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NewTokenForm {
    name: String,
    read_only: Option<String>,
    days: String,
}

pub(super) async fn token_create(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Form(form): Form<NewTokenForm>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let name = form.name.trim();
    let refuse = |msg: String| render(&ui, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg));
    if check_token_name(name).is_err() {
        return refuse(format!(
            "名称「{name}」不可用：请用 1 到 64 个字母、数字、“-”“_”或“.”。"
        ))
        .await;
    }
    let days = match form.days.trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return refuse(format!("有效天数「{d}」应为正整数。")).await,
        },
    };
    let rights = if form.read_only.is_some() {
        Rights::Read
    } else {
        Rights::Admin
    };
    let now = ui.now().timestamp_millis();
    let expires_at = days.map(|d| now.saturating_add(i64::from(d) * 86_400_000));
    let store = state.engine.store();
    match create_token(store.as_ref(), name, rights, expires_at, &user.actor(), now).await {
        Ok(token) => {
            let created = json!({"name": name, "rights_zh": rights_zh(rights), "token": token});
            render(&ui, StatusCode::OK, Some(created), None).await
        }
        Err(StoreError::Exists(_)) => {
            render(
                &ui,
                StatusCode::CONFLICT,
                None,
                Some(format!(
                    "已有名为「{name}」的令牌；请先吊销它，或换一个名称。"
                )),
            )
            .await
        }
        Err(e) => ui.store_fail(e),
    }
}

pub(super) async fn token_revoke(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(name): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let now = ui.now().timestamp_millis();
    match revoke_token(state.engine.store().as_ref(), &name, &user.actor(), now).await {
        Ok(true) => Redirect::to("/console/tokens").into_response(),
        Ok(false) => {
            render(
                &ui,
                StatusCode::NOT_FOUND,
                None,
                Some(format!("没有名为「{name}」的有效令牌。")),
            )
            .await
        }
        Err(e) => ui.store_fail(e),
    }
}
