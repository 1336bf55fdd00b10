//! The exports' data as JSON (`/api/reports/{name}`: the same tables, columns and filter
//! as the console's `.xlsx` downloads) and as `.xlsx` (`/api/reports/{name}/xlsx`).

use super::json::{ApiPath, ApiQuery};
use super::openapi::Endpoint;
use super::{ApiError, Principal, State};
use crate::api::console::{ReportError, build_report};
use crate::report::{Find, Report};
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

/// The reports' endpoints with their handlers (the router and the OpenAPI document are
/// both built from this list).
pub fn endpoints() -> Vec<(Endpoint, axum::routing::MethodRouter<State>)> {
    vec![
        (
            Endpoint {
                method: "get",
                path: "/api/reports/{name}",
                summary: "An export as JSON: `progress` (轮次进度), `overdue` (逾期清单), `tasks` (任务清单), `coverage` (培训体检覆盖) or `talks` (谈心谈话台账), filtered by round?, stage?, state? (a task state or `overdue`), branch?; {name, title, sheets: [{name, columns: [{key, heading}], rows}]} (docs/exports.md).",
                auth: Some("read"),
                errors: &[400, 404, 422],
                body: None,
            },
            axum::routing::get(report_json),
        ),
        (
            Endpoint {
                method: "get",
                path: "/api/reports/{name}/xlsx",
                summary: "The same export as an .xlsx workbook with Chinese headings.",
                auth: Some("read"),
                errors: &[400, 404, 422],
                body: None,
            },
            axum::routing::get(report_xlsx),
        ),
    ]
}

async fn report(s: &State, name: &str, find: &Find) -> Result<Report, ApiError> {
    match build_report(s, name, find).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(ApiError::not_found(format!(
            "no report `{name}`: use progress, overdue, tasks, coverage or talks"
        ))),
        Err(ReportError::State(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            e.to_string(),
        )),
        Err(ReportError::Store(e)) => Err(e.into()),
    }
}

async fn report_json(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(find): ApiQuery<Find>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(report(&s, &name, &find).await?.to_json()))
}

async fn report_xlsx(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(find): ApiQuery<Find>,
) -> Result<Response, ApiError> {
    let r = report(&s, &name, &find).await?;
    let bytes = r.to_xlsx().map_err(|e| {
        tracing::error!(error = %e, "export failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon log",
        )
    })?;
    let today = crate::engine::local_date(s.engine.clock().now(), s.engine.catalog().config.tz());
    Ok(crate::api::console::xlsx_response(
        &format!("{}-{today}.xlsx", r.name),
        bytes,
    ))
}
