//! The 考核结果汇总表 export's edge: reads a year's stored results, the people's tiers and
//! each collecting task's rules, and hands them to the pure [`report::results`]; served as
//! JSON (`/api/reports/results?year=`), as `.xlsx` (`/api/reports/results/xlsx?year=`) and
//! from the console's results page (`/console/export/results.xlsx?year=`).

use super::json::ApiQuery;
use super::{ApiError, AppState, Principal, State};
use crate::assessment::{AssessError, Assessment};
use crate::report::{Report, results as report};
use crate::store::{PeopleFilter, ResultFilter};
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The export's query: one year, or every year when none (or an empty one, as an HTML
/// form sends it) is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct YearQuery {
    #[serde(default)]
    year: Option<String>,
}

impl YearQuery {
    /// The year asked for; a value that is not a year is a 400 `bad_query`.
    fn year(&self) -> Result<Option<i32>, ApiError> {
        match self.year.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(y) => y.parse().map(Some).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("year `{y}` is not a year: give four digits, e.g. year=2025"),
                )
            }),
        }
    }
}

/// 考核结果汇总表 of `year` (every year when None).
pub(crate) async fn results_report(
    state: &AppState,
    year: Option<i32>,
) -> Result<Report, AssessError> {
    let store = state.engine.store();
    let catalog = state.engine.catalog();
    let rows = store
        .results(&ResultFilter {
            year,
            ..ResultFilter::default()
        })
        .await?;
    let tiers = catalog.config.pool.tiers();
    let everyone = PeopleFilter {
        include_removed: true,
        ..PeopleFilter::default()
    };
    let tier: BTreeMap<i64, String> = store
        .people(&everyone)
        .await?
        .into_iter()
        .map(|p| (p.id, tiers.name(p.person.tier).to_string()))
        .collect();
    let assessment = Assessment::new(&state.engine);
    let mut rules = BTreeMap::new();
    for task in rows.iter().map(|r| r.task_id) {
        if !rules.contains_key(&task)
            && let Some(r) = assessment.rules_of(task).await?
        {
            rules.insert(task, r);
        }
    }
    let dir = &catalog.directory;
    let lines: Vec<report::RatedLine> = rows
        .into_iter()
        .map(|r| report::RatedLine {
            year: r.year,
            unit: dir.unit(&r.unit).map_or(r.unit.clone(), |u| u.name.clone()),
            unit_id: r.unit,
            round_id: r.round_id,
            task_id: r.task_id,
            tier: tier.get(&r.person_id).cloned(),
            name: r.name,
            rating: r.rating,
            failing: r.failing != 0,
            priority: r.priority != 0,
        })
        .collect();
    Ok(report::results(&lines, &rules))
}

/// `GET /api/reports/results?year=`.
pub(super) async fn results_json(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<YearQuery>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(results_report(&s, q.year()?).await?.to_json()))
}

/// `GET /api/reports/results/xlsx?year=`.
pub(super) async fn results_xlsx(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<YearQuery>,
) -> Result<Response, ApiError> {
    let year = q.year()?;
    let r = results_report(&s, year).await?;
    let bytes = r.to_xlsx().map_err(|e| {
        tracing::error!(error = %e, "export failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon log",
        )
    })?;
    Ok(crate::api::console::xlsx_response(
        &file_name(&r, year),
        bytes,
    ))
}

/// `results-2026.xlsx`, or `results-all.xlsx` for every year.
pub(crate) fn file_name(r: &Report, year: Option<i32>) -> String {
    match year {
        Some(y) => format!("{}-{y}.xlsx", r.name),
        None => format!("{}-all.xlsx", r.name),
    }
}
