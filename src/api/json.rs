//! The JSON API (being written).

use super::State;
use axum::Router;

/// JSON API routes.
pub fn routes() -> Router<State> {
    Router::new()
}
