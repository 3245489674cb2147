//! The fans' web page: one HTML shell, a script and a stylesheet, all
//! compiled into the binary (nothing from a CDN).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::AppError;
use super::openapi::errors;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");

errors!(AssetErrors: NotFound);

/// The page's files (in the document only: the path is matched by name).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum AssetName {
    #[serde(rename = "app.js")]
    AppJs,
    #[serde(rename = "style.css")]
    StyleCss,
}

fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// The fans' web page: the list of events.
#[utoipa::path(
    get, path = "/", operation_id = "pageHome", tag = "page",
    responses((status = 200, description = "HTML.", body = String, content_type = "text/html"))
)]
pub async fn home() -> Response {
    page()
}

/// The fans' web page for one event: join, live position, seats, hold,
/// confirm (the page reads its route itself).
#[utoipa::path(
    get, path = "/events/{event_id}", operation_id = "pageEvent", tag = "page",
    params(("event_id" = String, Path, description = "The event; the page reports an unknown one itself.")),
    responses((status = 200, description = "HTML.", body = String, content_type = "text/html"))
)]
pub async fn event_page() -> Response {
    page()
}

/// The page's script and stylesheet (compiled into the binary).
#[utoipa::path(
    get, path = "/assets/{file}", operation_id = "asset", tag = "page",
    params(("file" = AssetName, Path, description = "The file.")),
    responses(
        (status = 200, description = "The file.", content((String = "text/javascript"), (String = "text/css"))),
        AssetErrors,
    )
)]
pub async fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return Err(AppError::not_found("no such asset")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}
