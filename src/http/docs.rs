//! The documentation and demo pages: `/openapi.yaml`, Swagger UI at `/docs` (its assets come
//! from the `swagger-ui-redist` crate, compiled in, so the page works with no internet), and
//! the demo chat at `/`. Every file is compiled into the binary.

use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use hyper::Response;
use swagger_ui_redist::SwaggerUi;

use crate::error::{ApiError, ApiResult, Body};
use crate::http::{static_response, Ctx};

/// The handwritten spec.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

const DOCS_HTML: &str = include_str!("../../static/docs.html");
const DOCS_INIT_JS: &str = include_str!("../../static/docs-init.js");
const INDEX_HTML: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const APP_CSS: &str = include_str!("../../static/app.css");

/// Everything is served from this origin: no CDN, no inline script. Swagger UI draws its
/// icons as `data:` SVGs.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Adds the security headers of an HTML page.
fn page(body: &'static str) -> Response<Body> {
    let mut response = static_response("text/html; charset=utf-8", body);
    let h = response.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An asset with `nosniff` and a day of caching (they change only with the binary).
fn asset(content_type: &'static str, body: &'static [u8]) -> Response<Body> {
    let mut response = static_response(content_type, body);
    let h = response.headers_mut();
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// `GET /openapi.yaml`
pub async fn openapi(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Ok(asset("application/yaml", OPENAPI_YAML.as_bytes()))
}

/// `GET /docs`
pub async fn docs_page(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Ok(page(DOCS_HTML))
}

/// `GET /docs/{file}`: Swagger UI's assets and our init script.
pub async fn docs_asset(_ctx: Ctx, name: &str) -> ApiResult<Response<Body>> {
    if name == "docs-init.js" {
        return Ok(asset(content_type(name), DOCS_INIT_JS.as_bytes()));
    }
    SwaggerUi::static_files()
        .iter()
        .find(|(file, _)| file.file_name() == name)
        .map(|(_, bytes)| asset(content_type(name), bytes))
        .ok_or(ApiError::NotFound("file"))
}

/// `GET /static/{file}`: the demo page's script and style.
pub async fn static_asset(_ctx: Ctx, name: &str) -> ApiResult<Response<Body>> {
    match name {
        "app.js" => Ok(asset(content_type(name), APP_JS.as_bytes())),
        "app.css" => Ok(asset(content_type(name), APP_CSS.as_bytes())),
        _ => Err(ApiError::NotFound("file")),
    }
}

/// `GET /`: the demo chat.
pub async fn index(_ctx: Ctx) -> ApiResult<Response<Body>> {
    Ok(page(INDEX_HTML))
}
