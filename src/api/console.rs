//! The web console (being written).

use super::State;
use axum::Router;

/// Console and branch-page routes.
pub fn routes() -> Router<State> {
    Router::new()
}
