//! The layer rule of ARCHITECTURE.md, checked on the source: a module of `src/` imports only
//! modules of lower layers (and the few same-layer pairs listed), and the lower layers know
//! nothing of HTTP. Fails naming every import that breaks it.

use std::collections::BTreeSet;
use std::path::Path;

/// Layers from the top; a module may use the modules of the layers below its own.
const LAYERS: &[&[&str]] = &[
    &["main", "cli", "app"],
    &["router"],
    &["api", "auth", "ui", "events", "services"],
    &["runs", "scheduling", "extract", "error", "identity"],
    &["state"],
    &[
        "orchestration",
        "storage",
        "broker",
        "event_model",
        "service",
        "telemetry",
        "tls",
    ],
    &["wire", "query"],
    &["time", "settings", "version", "ids"],
];

/// Same-layer uses that are part of the design.
const SIBLINGS: &[(&str, &str)] = &[
    // The command line starts the composition root.
    ("cli", "app"),
    // `POST /events` hands events to the ingestion pipeline.
    ("api", "events"),
    // Scheduling creates runs through the run functions.
    ("scheduling", "runs"),
    // Extractors answer with the API's error type.
    ("extract", "error"),
];

/// Modules that must not know HTTP (no actix types).
const NO_HTTP: &[&str] = &[
    "orchestration",
    "storage",
    "broker",
    "event_model",
    "service",
    "state",
    "runs",
    "scheduling",
    "time",
    "settings",
    "wire",
    "query",
];

/// Macros exported at the crate root, by the module that defines them.
const MACROS: &[(&str, &str)] = &[("db_run", "storage"), ("col", "storage")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a source text names through `crate::`.
fn used_modules(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{..}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        used.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
            used.insert(first_segment(&item));
        } else {
            used.insert(first_segment(rest));
        }
    }
    used.remove("");
    used
}

fn first_segment(s: &str) -> String {
    s.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let broken = violations(&src);
    assert!(
        broken.is_empty(),
        "layer rule broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn an_upward_import_and_http_in_storage_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).expect("mkdir");
    std::fs::write(
        storage.join("mod.rs"),
        "use crate::api::flows;\nuse crate::time;\nfn f(_: actix_web::HttpRequest) {}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("api.rs"),
        "use crate::{storage, runs::x};\n",
    )
    .expect("write");
    let broken = violations(dir.path());
    assert_eq!(broken.len(), 2, "{broken:#?}");
    assert!(
        broken[0].contains("`storage` (layer 5) uses `api` (layer 2)"),
        "{broken:#?}"
    );
    assert!(broken[1].contains("must not know HTTP"), "{broken:#?}");
}

/// Every import of `src` that breaks the rule, one line each.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap_or(file);
        let module = rel
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .unwrap_or_default();
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            broken.push(format!(
                "{}: module `{module}` is in no layer",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for used in used_modules(&text) {
            let used = MACROS
                .iter()
                .find(|(m, _)| *m == used)
                .map(|(_, owner)| owner.to_string())
                .unwrap_or(used);
            if used == module {
                continue;
            }
            let Some(theirs) = layer_of(&used) else {
                broken.push(format!(
                    "{}: uses `crate::{used}`, which is in no layer",
                    rel.display()
                ));
                continue;
            };
            let sibling = SIBLINGS.contains(&(module.as_str(), used.as_str()));
            if theirs < own || (theirs == own && !sibling) {
                broken.push(format!(
                    "{}: `{module}` (layer {own}) uses `{used}` (layer {theirs})",
                    rel.display()
                ));
            }
        }
        if NO_HTTP.contains(&module.as_str()) && text.contains("actix") {
            broken.push(format!(
                "{}: `{module}` must not know HTTP (actix)",
                rel.display()
            ));
        }
    }
    broken
}

#[test]
fn the_parser_sees_grouped_and_nested_imports() {
    let used = used_modules(
        "use crate::{state::AppState, storage::{self, Conn}, time};\nlet x = crate::db_run!(c, |c| 1);",
    );
    let want: BTreeSet<String> = ["state", "storage", "time", "db_run"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(used, want);
}
