//! The documentation and demo pages: `/openapi.yaml`, Swagger UI at `/docs`, the demo at `/`.

use hyper::Response;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{static_response, Ctx};

/// The handwritten spec, compiled in.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `GET /openapi.yaml`
pub async fn openapi(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Ok(static_response("application/yaml", OPENAPI_YAML))
}

/// `GET /docs`
pub async fn docs_page(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Err(ApiError::NotFound("page"))
}

/// `GET /docs/{file}`
pub async fn docs_asset(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Err(ApiError::NotFound("file"))
}

/// `GET /`
pub async fn index(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Err(ApiError::NotFound("page"))
}
