//! The nodes sharing the database, as their heartbeats say.

use super::Shared;
use super::error::{ApiError, ErrorBody};
use crate::store::NodeRow;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Nodes {
    /// `sqlite` (one node) or `postgres` (shared by the nodes below).
    store: &'static str,
    /// This node's `cluster.node_id` (empty with SQLite).
    this_node: String,
    /// Every node that ever heartbeated, by id; `age_ms` tells which
    /// are alive (a live node writes every `cluster.heartbeat_s`).
    nodes: Vec<NodeRow>,
}

/// The nodes of the cluster: their SIP and HTTP addresses, last
/// heartbeat and how many callbacks each holds a live lease on.
#[utoipa::path(get, path = "/api/nodes", tag = "operations",
    security(("token" = [])),
    responses((status = 200, body = Nodes), (status = 401, body = ErrorBody),
        (status = 500, body = ErrorBody)))]
pub async fn list(State(ctx): Shared) -> Result<axum::Json<Nodes>, ApiError> {
    let centre = &ctx.app.centre;
    let shared = centre.dialer.book.is_shared();
    let nodes = centre.dialer.book.nodes().await?;
    Ok(axum::Json(Nodes {
        store: if shared { "postgres" } else { "sqlite" },
        this_node: if shared {
            centre.config.cluster.node_id.clone()
        } else {
            String::new()
        },
        nodes,
    }))
}
