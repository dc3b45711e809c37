//! The documentation stays true: every (path, method) the router serves is in `openapi.yaml`
//! and nothing else is, and the docs and demo pages answer with the right types and headers,
//! with every asset they reference served by rtchat itself.

use std::collections::BTreeSet;

use rtchat::testing::ROUTES;
use serde_norway::Value as Yaml;

use crate::support::*;

/// The operation keys of an OpenAPI path item (the other keys are `parameters`, `summary`...).
const OPENAPI_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(path, method)` pairs, methods upper-case: `("/chats/{chat_id}", "PATCH")`.
type Operations = BTreeSet<(String, String)>;

fn router_operations() -> Operations {
    ROUTES
        .iter()
        .flat_map(|(path, route)| {
            route
                .methods()
                .iter()
                .map(move |m| (path.to_string(), m.as_str().to_string()))
        })
        .collect()
}

fn spec_operations(spec: &str) -> Operations {
    let spec: Yaml = serde_norway::from_str(spec).expect("openapi.yaml is valid YAML");
    let paths = spec["paths"]
        .as_mapping()
        .expect("openapi.yaml has a `paths` mapping");
    let mut operations = Operations::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        let item = item.as_mapping().expect("a path item is a mapping");
        for key in item.keys() {
            let key = key.as_str().expect("path item keys are strings");
            if OPENAPI_METHODS.contains(&key) {
                operations.insert((path.to_string(), key.to_ascii_uppercase()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn every_route_is_in_openapi_yaml_and_nothing_else_is() {
    // Arrange: the spec as the server serves it (compiled in from openapi.yaml).
    let app = TestApp::spawn().await;
    let served = app.http.get(app.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let spec = served.text().await.unwrap();

    // Act
    let routed = router_operations();
    let documented = spec_operations(&spec);

    // Assert
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "served by the router but missing from openapi.yaml: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "in openapi.yaml but not served by the router: {unrouted:?}"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_file_in_the_repository() {
    let app = TestApp::spawn().await;
    let served = app.http.get(app.url("/openapi.yaml")).send().await.unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml is readable");
    assert_eq!(served.text().await.unwrap(), file);
}

/// GETs `path` without a token and checks the status and the content type's essence.
async fn fetch(app: &TestApp, path: &str, content_type: &str) -> reqwest::Response {
    let r = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    let got = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        got.split(';').next().unwrap_or("").trim(),
        content_type,
        "content type of {path}"
    );
    assert_eq!(
        r.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff"),
        "nosniff on {path}"
    );
    r
}

#[tokio::test]
async fn docs_demo_and_spec_answer_with_their_content_types() {
    let app = TestApp::spawn().await;
    for (path, content_type) in [
        ("/docs", "text/html"),
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/docs-init.js", "text/javascript"),
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/openapi.yaml", "application/yaml"),
    ] {
        let r = fetch(&app, path, content_type).await;
        assert!(!r.bytes().await.unwrap().is_empty(), "{path} has a body");
    }
}

#[tokio::test]
async fn html_pages_carry_a_content_security_policy_and_nosniff() {
    let app = TestApp::spawn().await;
    for path in ["/docs", "/"] {
        let r = fetch(&app, path, "text/html").await;
        let csp = r
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path} has a content-security-policy"));
        assert!(
            csp.contains("default-src 'self'"),
            "{path} CSP keeps everything on this origin: {csp}"
        );
    }
}

/// The values of `src="..."` and `href="..."` attributes in an HTML page.
fn referenced_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                urls.push(rest[..end].to_string());
            }
        }
    }
    urls
}

#[tokio::test]
async fn every_asset_a_page_references_is_served_from_this_origin() {
    let app = TestApp::spawn().await;
    for page in ["/docs", "/"] {
        let html = fetch(&app, page, "text/html").await.text().await.unwrap();
        let urls = referenced_urls(&html);
        assert!(!urls.is_empty(), "{page} references its assets");
        for url in urls {
            assert!(
                url.starts_with('/') && !url.starts_with("//"),
                "{page} references {url}, which is not on this origin"
            );
            let r = app.http.get(app.url(&url)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{page} references {url}");
        }
    }
}

/// The `enum` of a path parameter `{file}` of `path` in the spec.
fn documented_files(spec: &Yaml, path: &str) -> BTreeSet<String> {
    spec["paths"][path]["get"]["parameters"]
        .as_sequence()
        .expect("the operation has parameters")
        .iter()
        .find(|p| p["name"].as_str() == Some("file"))
        .expect("a `file` parameter")["schema"]["enum"]
        .as_sequence()
        .expect("the file names are an enum")
        .iter()
        .map(|f| f.as_str().expect("file names are strings").to_string())
        .collect()
}

#[tokio::test]
async fn the_documented_asset_names_are_exactly_the_served_ones() {
    let app = TestApp::spawn().await;
    let spec: Yaml = serde_norway::from_str(rtchat::testing::OPENAPI_YAML).unwrap();

    let mut swagger: BTreeSet<String> = swagger_ui_redist::SwaggerUi::static_files()
        .iter()
        .map(|(file, _)| file.file_name().to_string())
        .collect();
    swagger.insert("docs-init.js".into());
    assert_eq!(documented_files(&spec, "/docs/{file}"), swagger);

    for (path, files) in [
        ("/docs/{file}", documented_files(&spec, "/docs/{file}")),
        ("/static/{file}", documented_files(&spec, "/static/{file}")),
    ] {
        for file in files {
            let url = path.replace("{file}", &file);
            let r = app.http.get(app.url(&url)).send().await.unwrap();
            assert_eq!(r.status(), 200, "GET {url}");
        }
    }
    let r = app.http.get(app.url("/docs/nope.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// The contract ships with the repository (`docs/API.md`, linked from the README) and is a
/// copy of the shared one: where the shared copy is beside the checkout, the two are equal.
#[test]
fn docs_api_md_is_the_shared_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = std::fs::read_to_string(root.join("docs/API.md")).expect("docs/API.md exists");
    assert!(ours.contains("## v2"), "docs/API.md carries the v2 section");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md exists");
    assert!(
        readme.contains("](docs/API.md)"),
        "the README links the contract inside the repository"
    );
    if let Ok(shared) = std::fs::read_to_string(root.join("../shared/API.md")) {
        assert!(
            ours == shared,
            "docs/API.md differs from ../shared/API.md: copy it again"
        );
    }
}

/// The README's configuration table is `SETTINGS` rendered, so the defaults `rtchat --help`
/// prints, the ones the parser uses and the ones the README shows are the same.
#[test]
fn the_readme_configuration_table_is_the_settings_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md exists");
    let table = rtchat::config::Config::settings_table();
    assert!(
        readme.contains(&table),
        "README.md's configuration table differs from SETTINGS; it should read:\n{table}"
    );
    let help = rtchat::config::Config::help();
    for setting in rtchat::config::SETTINGS {
        assert!(help.contains(setting.name), "--help lists {}", setting.name);
    }
}
