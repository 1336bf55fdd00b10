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
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{}{}", e.method, e.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "400": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            },
        });
        if let Some(right) = e.auth {
            op["security"] = json!([{"bearer": []}]);
            op["responses"]["401"] = json!({"$ref": "#/components/responses/Error"});
            if right == "admin" {
                op["responses"]["403"] = json!({"$ref": "#/components/responses/Error"});
            }
        }
        if e.method == "post" {
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
            "responses": {"Error": {"description": "What is wrong", "content": {"application/json": {"schema": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}}}},
        },
    })
}
