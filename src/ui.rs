//! The UI: Orrery's own, the files of `static/` embedded in the binary (a single-page
//! application of ES modules over the JSON API, no build step: ARCHITECTURE.md, "The UI"), or a
//! built UI served from `ui.dir` on disk — such as either of Prefect's (`prefect/server/ui`, the
//! Vue one, or `ui-v2`, the React one, from the `prefect` wheel), served as the reference server
//! serves them: `/ui-settings` tells the page where the API is, and the base-URL placeholder in
//! their files is replaced as they are sent. The embedded page is rendered with the server's
//! version, health and API URL, and sent with a Content-Security-Policy that allows scripts,
//! styles and connections only from this server (and the API host). Paths that name no file get
//! the index page, as a single-page application expects; a missing file (a name with an
//! extension) is a 404.

use std::path::{Component, Path};

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::state::AppState;
use crate::version::{API_VERSION, PREFECT_VERSION};

const INDEX: &str = include_str!("../static/index.html");
/// Every file of `static/` but the index (a test checks none is missing).
const EMBEDDED: &[(&str, &str)] = &[
    ("style.css", include_str!("../static/style.css")),
    ("js/main.js", include_str!("../static/js/main.js")),
    ("js/dom.js", include_str!("../static/js/dom.js")),
    ("js/api.js", include_str!("../static/js/api.js")),
    ("js/format.js", include_str!("../static/js/format.js")),
    (
        "js/pages/runs.js",
        include_str!("../static/js/pages/runs.js"),
    ),
    (
        "js/pages/flow_run.js",
        include_str!("../static/js/pages/flow_run.js"),
    ),
    ("js/logs.js", include_str!("../static/js/logs.js")),
    ("js/widgets.js", include_str!("../static/js/widgets.js")),
    (
        "js/pages/task_run.js",
        include_str!("../static/js/pages/task_run.js"),
    ),
    (
        "js/pages/settings.js",
        include_str!("../static/js/pages/settings.js"),
    ),
];

/// The embedded UI's Content-Security-Policy: nothing inline, nothing from elsewhere but the API.
fn csp(api_origin: Option<&str>) -> String {
    let connect = match api_origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/ui-settings", web::get().to(ui_settings))
        .route("/{path:.*}", web::get().to(asset));
}

/// What Prefect's built UIs have in their files where the reference server puts the base URL
/// they are served under (`/` here, so the placeholder becomes "").
const BASE_PLACEHOLDER: &str = "/PREFECT_UI_SERVE_BASE_REPLACE_PLACEHOLDER";

/// Which of Prefect's UIs `ui.dir` holds: the React one (`v2`) loads React from its index page.
fn prefect_ui_kind(dir: &str) -> &'static str {
    match std::fs::read_to_string(Path::new(dir).join("index.html")) {
        Ok(page) if page.contains("vendor-react") => "v2",
        _ => "v1",
    }
}

/// `GET /ui-settings`: where the API is, for Prefect's UIs (the reference's `UISettings`).
async fn ui_settings(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let dir = state.settings.ui.dir.trim();
    let kind = (!dir.is_empty()).then(|| prefect_ui_kind(dir));
    let base = |k: &str| (kind == Some(k)).then_some("/");
    HttpResponse::Ok().json(serde_json::json!({
        "api_url": crate::extract::api_url(&req, &state),
        "csrf_enabled": false,
        "auth": null,
        "flags": [],
        "default_ui": kind.unwrap_or("v1"),
        "available_uis": kind.into_iter().collect::<Vec<_>>(),
        "v1_base_url": base("v1"),
        "v2_base_url": base("v2"),
    }))
}

/// `bytes` with the base-URL placeholder removed when it is a text file that has it.
fn without_placeholder(path: &str, bytes: Vec<u8>) -> Vec<u8> {
    let text_like = matches!(
        path.rsplit('.').next(),
        Some("html" | "js" | "mjs" | "css" | "json" | "webmanifest" | "svg")
    );
    if !text_like || memchr::memmem::find(&bytes, BASE_PLACEHOLDER.as_bytes()).is_none() {
        return bytes;
    }
    match String::from_utf8(bytes) {
        Ok(text) => text.replace(BASE_PLACEHOLDER, "").into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let template = match state.settings.ui.dir.trim() {
        "" => INDEX.to_string(),
        dir => match std::fs::read(Path::new(dir).join("index.html")) {
            Ok(page) => {
                return HttpResponse::Ok()
                    .content_type(ContentType::html())
                    .insert_header(("Cache-Control", "no-cache"))
                    .body(without_placeholder("index.html", page))
            }
            Err(_) => INDEX.to_string(),
        },
    };
    let (health, class) = match state.check_ready().await {
        Ok(stores) => match stores.iter().find(|(_, s)| *s == "degraded") {
            Some((role, _)) => (format!("healthy; {role} degraded"), "ok"),
            None => ("healthy".to_string(), "ok"),
        },
        Err(reason) => (format!("not ready: {reason}"), "bad"),
    };
    let api_url = crate::extract::api_url(&req, &state);
    let two_hosts = state.settings.api_host().is_some();
    let api_path = if two_hosts {
        api_url.clone()
    } else {
        "/api".to_string()
    };
    let api_origin = two_hosts.then(|| origin_of(&api_url)).flatten();
    let page = template
        .replace(
            "{{version}}",
            &format!(
                "orrery {} (Prefect {PREFECT_VERSION})",
                env!("CARGO_PKG_VERSION")
            ),
        )
        .replace("{{api_version}}", API_VERSION)
        .replace("{{health}}", &html_escape(&health))
        .replace("{{health_class}}", class)
        .replace("{{api_url}}", &html_escape(&api_url))
        .replace("{{api_path}}", &html_escape(&api_path));
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(("Content-Security-Policy", csp(api_origin.as_deref())))
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(page)
}

async fn asset(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let path = path.into_inner();
    let dir = state.settings.ui.dir.trim();
    if !dir.is_empty() {
        if let Some(file) = safe_join(Path::new(dir), &path) {
            if let Ok(bytes) = std::fs::read(&file) {
                // Built assets carry a content hash in their names; the rest may change.
                let cache = match path.starts_with("assets/") {
                    true => "public, max-age=31536000, immutable",
                    false => "no-cache",
                };
                return HttpResponse::Ok()
                    .content_type(content_type(&path))
                    .insert_header(("Cache-Control", cache))
                    .body(without_placeholder(&path, bytes));
            }
        }
    } else if let Some((_, body)) = EMBEDDED.iter().find(|(name, _)| *name == path) {
        // Not content-hashed: the browser asks again each time and gets a 304-free copy (they
        // are small and compressed).
        return HttpResponse::Ok()
            .content_type(content_type(&path))
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(*body);
    }
    // A page of the application gets the index; a file that is not there is missing.
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return HttpResponse::NotFound()
            .content_type(ContentType::plaintext())
            .body("Not Found");
    }
    index(req, state).await
}

/// `dir/rel` when `rel` stays inside `dir` (no `..`, no absolute parts).
fn safe_join(dir: &Path, rel: &str) -> Option<std::path::PathBuf> {
    let rel = Path::new(rel);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::{csp, origin_of, safe_join, EMBEDDED};
    use std::path::Path;

    #[test]
    fn every_static_file_is_embedded() {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("static dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        for f in files.iter().filter(|f| *f != "index.html") {
            assert!(
                EMBEDDED.iter().any(|(name, _)| name == f),
                "static/{f} is not in ui.rs's EMBEDDED"
            );
        }
    }

    #[test]
    fn the_policy_allows_nothing_inline_and_only_the_api_host_besides() {
        let p = csp(Some("https://api.example.com"));
        assert!(p.contains("script-src 'self';"), "{p}");
        assert!(!p.contains("unsafe-inline"), "{p}");
        assert!(
            p.contains("connect-src 'self' https://api.example.com;"),
            "{p}"
        );
        assert_eq!(
            origin_of("http://api.example.com:4200/api").as_deref(),
            Some("http://api.example.com:4200")
        );
    }

    #[test]
    fn paths_cannot_escape_the_ui_dir() {
        assert!(safe_join(Path::new("/srv/ui"), "../etc/passwd").is_none());
        assert!(safe_join(Path::new("/srv/ui"), "/etc/passwd").is_none());
        assert_eq!(
            safe_join(Path::new("/srv/ui"), "a/b.js"),
            Some(Path::new("/srv/ui/a/b.js").to_path_buf())
        );
    }
}
