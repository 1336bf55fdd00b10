//! The OpenAPI 3.1 document of the JSON API, generated from the same endpoint list as the
//! router (`json::endpoints` passes it in), so every route is documented and every
//! documented route exists.

use serde_json::{Map, Value, json};

/// One documented endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `get` or `post`.
    pub method: &'static str,
    /// axum path, e.g. `/api/tasks/{id}`.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Needs a token (`admin` for changes).
    pub auth: Option<&'static str>,
    /// Error statuses of its own (404 unknown id, 409, 422, 400 for a query); those
    /// of its kind are added by [`document`].
    pub errors: &'static [u16],
    /// The request body's OpenAPI object (schema per content type), when it has its own.
    pub body: Option<fn() -> Value>,
}

/// `pub fn endpoints()` of an API module from one list of `METHOD "PATH" HANDLER AUTH,
/// [STATUSES], BODY, "SUMMARY";` lines: the router and the OpenAPI document are both built
/// from it, so they cannot drift apart. `no_body:` first leaves BODY out of every line.
macro_rules! endpoints {
    (no_body: $( $method:ident $path:literal $handler:ident $auth:expr, [$($status:literal),*], $summary:literal; )*) => {
        $crate::api::openapi::endpoints! {
            $( $method $path $handler $auth, [$($status),*], None, $summary; )*
        }
    };
    ($( $method:ident $path:literal $handler:ident $auth:expr, [$($status:literal),*], $body:expr, $summary:literal; )*) => {
        /// Every endpoint of this module with its handler (the router and the OpenAPI
        /// document are both built from this list).
        pub fn endpoints() -> Vec<($crate::api::openapi::Endpoint, axum::routing::MethodRouter<State>)> {
            vec![$(
                ($crate::api::openapi::Endpoint { method: stringify!($method), path: $path, summary: $summary, auth: $auth, errors: &[$($status),*], body: $body },
                 axum::routing::$method($handler)),
            )*]
        }
    };
}
pub(crate) use endpoints;

impl Endpoint {
    /// A method that carries a body and changes something.
    fn has_body(&self) -> bool {
        matches!(self.method, "post" | "patch")
    }
}

/// Every error class: status, component name, what it means (with its codes).
const ERROR_CLASSES: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed: the request does not read as this operation's input — a path id that is not a number (`bad_path`), a query string that does not parse or has a value of the wrong type or an unknown parameter (`bad_query`), a body that is not JSON or has a field of the wrong type, missing or unknown (`bad_json`).",
    ),
    (
        401,
        "Unauthorized",
        "No token, an unknown or revoked one, or a change sent without `Authorization: Bearer` (the console's cookie is not accepted for changes) (`unauthorized`).",
    ),
    (
        403,
        "Forbidden",
        "A read-only token asked for a change (`forbidden`), or a change was sent by a page of another site (`cross_site`: `Sec-Fetch-Site` is `same-site` or `cross-site`, or `Origin` is not this server's).",
    ),
    (
        404,
        "NotFound",
        "The id names nothing (`not_found`, `unknown_workflow`).",
    ),
    (
        409,
        "Conflict",
        "The task is not in a state that allows this (`wrong_state`), or a token of that name exists (`exists`).",
    ),
    (
        413,
        "TooLarge",
        "The body is larger than `[http] max_body_bytes` (`too_large`).",
    ),
    (
        415,
        "UnsupportedMediaType",
        "A body without `Content-Type: application/json` (a roster import: without the .xlsx or `text/csv` content type) (`unsupported_media_type`).",
    ),
    (
        422,
        "Invalid",
        "The request reads, but a value is refused: an unknown state, unit or date, a limit out of range, a missing reason, a plan that cannot be made, a person's field refused (listed in `error.fields`), a roster with bad rows (listed in `error.problems`) (`invalid`, `unknown_unit`, `cannot_plan`, `reason_required`, `bad_roster`).",
    ),
];

/// The error statuses of an endpoint: its own plus those of its kind, in order.
pub fn error_statuses(e: &Endpoint) -> Vec<u16> {
    let mut out: Vec<u16> = e.errors.to_vec();
    let has_path_param = e.path.contains('{');
    if has_path_param || e.has_body() {
        out.push(400);
    }
    if let Some(right) = e.auth {
        out.push(401);
        if right == "admin" {
            out.push(403);
        }
    }
    if e.has_body() {
        out.extend([403, 413, 415]);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The document served at `/api/openapi.json`.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in endpoints {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if name == "id" && !e.path.contains("workflows") { "integer" } else { "string" }}}))
            .collect();
        let created = ["/api/rounds", "/api/people", "/api/people/{id}/events"];
        let ok = if created.contains(&e.path) && e.method == "post" {
            "201"
        } else {
            "200"
        };
        let mut responses = Map::new();
        responses.insert(ok.into(), json!({"description": "OK"}));
        for status in error_statuses(e) {
            if let Some((_, name, _)) = ERROR_CLASSES.iter().find(|(s, _, _)| *s == status) {
                responses.insert(
                    status.to_string(),
                    json!({"$ref": format!("#/components/responses/{name}")}),
                );
            }
        }
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{}{}", e.method, e.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if e.auth.is_some() {
            op["security"] = json!([{"bearer": []}]);
        }
        if let Some(body) = e.body {
            op["requestBody"] = body();
        } else if e.has_body() {
            op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        paths
            .entry(e.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(e.method.to_string(), op));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "yanzhen (雁阵) API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Rounds, tasks, workflows, directory and audit log of a yanzhen daemon."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token from `yanzhen token create NAME`."}},
            "responses": error_responses(),
            "schemas": {"Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}},
        },
    })
}

/// One response component per error class, each with the error shape.
fn error_responses() -> Value {
    let mut out = Map::new();
    for (_, name, description) in ERROR_CLASSES {
        out.insert(
            name.to_string(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}
