//! The UI: the pages in `static/`, embedded in the binary (or served from `ui.dir` on disk). The
//! root page is rendered with the server's version and health. Paths that name no file get the
//! index page, as a single-page application expects.

use std::path::{Component, Path};

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::state::AppState;
use crate::version::{API_VERSION, PREFECT_VERSION};

const INDEX: &str = include_str!("../static/index.html");
const EMBEDDED: &[(&str, &str)] = &[("style.css", include_str!("../static/style.css"))];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/{path:.*}", web::get().to(asset));
}

async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let template = match state.settings.ui.dir.trim() {
        "" => INDEX.to_string(),
        dir => std::fs::read_to_string(Path::new(dir).join("index.html"))
            .unwrap_or_else(|_| INDEX.to_string()),
    };
    let (health, class) = match state.check_ready().await {
        Ok(stores) => match stores.iter().find(|(_, s)| *s == "degraded") {
            Some((role, _)) => (format!("healthy; {role} degraded"), "ok"),
            None => ("healthy".to_string(), "ok"),
        },
        Err(reason) => (format!("not ready: {reason}"), "bad"),
    };
    let conn = req.connection_info();
    let api_url = match state.settings.api_host() {
        Some(host) => format!("{}://{host}/api", conn.scheme()),
        None => format!("{}://{}/api", conn.scheme(), conn.host()),
    };
    let api_path = if state.settings.api_host().is_some() {
        api_url.clone()
    } else {
        "/api".to_string()
    };
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
                return HttpResponse::Ok()
                    .content_type(content_type(&path))
                    .body(bytes);
            }
        }
    } else if let Some((_, body)) = EMBEDDED.iter().find(|(name, _)| *name == path) {
        return HttpResponse::Ok()
            .content_type(content_type(&path))
            .body(*body);
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
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
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
    use super::safe_join;
    use std::path::Path;

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
