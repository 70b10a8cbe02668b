//! Settings: the typed configuration of one Orrery process.
//!
//! Layers, each overriding the one before: the embedded `config/default.toml` (which lists every
//! key), an optional `--config FILE`, then environment variables `ORRERY__SECTION__KEY`.
//! Unknown keys and ill-typed values are rejected, and every problem is reported at once.
//! This module reads files and the environment only; it knows nothing of HTTP or storage.

mod auth;
mod events;
mod hosts;
mod notifications;
mod services;
pub use auth::{AuthMode, AuthSettings};
pub use events::EventSettings;
pub use hosts::host_name;
pub use notifications::NotificationSettings;
pub use services::ServiceSettings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The embedded defaults: every key Orrery knows, with its comment.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "ORRERY";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub services: ServiceSettings,
    pub events: EventSettings,
    pub notifications: NotificationSettings,
    pub ui: UiSettings,
    pub collections: CollectionsSettings,
    pub auth: AuthSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub api_host: String,
    pub app_host: String,
    pub cors_origins: String,
    pub workers: usize,
    pub shutdown_timeout_seconds: u64,
    pub default_limit: i64,
    pub body_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: String,
    pub access: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub data_dir: String,
    pub url: String,
    pub orion_url: String,
    pub nebula_url: String,
    pub events_url: String,
    pub pool_size: usize,
    pub connect_timeout_seconds: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    pub cache_url: String,
    pub work_url: String,
    pub streams_url: String,
    pub pool_size: usize,
    pub namespace: String,
    pub stream_maxlen: usize,
    pub stream_max_age_seconds: u64,
    pub consumer_reap_after_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UiSettings {
    pub dir: String,
}

/// `/collections/views/{view}`: the registry views Orrery answers with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionsSettings {
    pub dir: String,
}

/// Every problem found while loading settings, each naming its key.
#[derive(Debug)]
pub struct SettingsErrors(pub Vec<String>);

impl std::fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid settings ({} problem(s)):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

/// Where a logical database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

impl Settings {
    /// Loads the layers from the embedded defaults, `file` and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Like [`Settings::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, SettingsErrors> {
        let mut problems = Vec::new();
        let defaults = toml_to_json(DEFAULT_TOML, "the embedded defaults", &mut problems);
        let mut merged = defaults.clone();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let layer = toml_to_json(&text, &path.display().to_string(), &mut problems);
                    merge_layer(
                        &defaults,
                        &mut merged,
                        layer,
                        &path.display().to_string(),
                        &mut problems,
                    );
                }
                Err(e) => problems.push(format!("cannot read config file {}: {e}", path.display())),
            }
        }
        merge_layer(
            &defaults,
            &mut merged,
            env_layer(env),
            "the environment",
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(SettingsErrors(problems));
        }
        let settings: Settings = match serde_json::from_value(Value::Object(merged)) {
            Ok(s) => s,
            Err(e) => return Err(SettingsErrors(vec![e.to_string()])),
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsErrors> {
        let mut p = Vec::new();
        if self.server.bind.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "server.bind: `{}` is not an address like 127.0.0.1:4200",
                self.server.bind
            ));
        }
        if !(1..=10_000).contains(&self.server.default_limit) {
            p.push("server.default_limit: must be between 1 and 10000".into());
        }
        for (k, v) in [
            ("server.api_host", &self.server.api_host),
            ("server.app_host", &self.server.app_host),
        ] {
            if v.contains('/') || v.contains(' ') {
                p.push(format!(
                    "{k}: `{v}` must be a bare host name such as api.example.com"
                ));
            }
        }
        if non_empty(&self.server.api_host).is_some()
            && self
                .server
                .api_host
                .eq_ignore_ascii_case(&self.server.app_host)
        {
            p.push("server.app_host: must differ from server.api_host".into());
        }
        match (
            non_empty(&self.tls.cert_file),
            non_empty(&self.tls.key_file),
        ) {
            (Some(_), None) => p.push("tls.key_file: must be set when tls.cert_file is set".into()),
            (None, Some(_)) => p.push("tls.cert_file: must be set when tls.key_file is set".into()),
            (Some(c), Some(k)) => {
                for (key, path) in [("tls.cert_file", c), ("tls.key_file", k)] {
                    if !Path::new(path).is_file() {
                        p.push(format!("{key}: no such file `{path}`"));
                    }
                }
            }
            (None, None) => {}
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            p.push(format!(
                "log.format: `{}` must be \"text\" or \"json\"",
                self.log.format
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            p.push(format!(
                "log.level: `{}` is not a log level or filter",
                self.log.level
            ));
        }
        for (key, url) in [
            ("database.url", &self.database.url),
            ("database.orion_url", &self.database.orion_url),
            ("database.nebula_url", &self.database.nebula_url),
            ("database.events_url", &self.database.events_url),
        ] {
            if let Some(u) = non_empty(url) {
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
                    || url::Url::parse(u).is_err()
                {
                    p.push(format!(
                        "{key}: `{}` is not a postgres:// URL",
                        redact_url(u)
                    ));
                }
            }
        }
        if self.database.pool_size == 0 {
            p.push("database.pool_size: must be at least 1".into());
        }
        if non_empty(&self.database.data_dir).is_none() {
            p.push("database.data_dir: must not be empty".into());
        }
        for (key, url) in [
            ("redis.url", &self.redis.url),
            ("redis.cache_url", &self.redis.cache_url),
            ("redis.work_url", &self.redis.work_url),
            ("redis.streams_url", &self.redis.streams_url),
        ] {
            if let Some(u) = non_empty(url) {
                if !(u.starts_with("redis://") || u.starts_with("rediss://"))
                    || url::Url::parse(u).is_err()
                {
                    p.push(format!("{key}: `{}` is not a redis:// URL", redact_url(u)));
                }
            }
        }
        if self.redis.pool_size == 0 {
            p.push("redis.pool_size: must be at least 1".into());
        }
        if self.redis.stream_maxlen < 100 {
            p.push("redis.stream_maxlen: must be at least 100".into());
        }
        if self.redis.stream_max_age_seconds < 60 {
            p.push("redis.stream_max_age_seconds: must be at least 60".into());
        }
        if self.redis.consumer_reap_after_seconds < 2 {
            p.push("redis.consumer_reap_after_seconds: must be at least 2".into());
        }
        if self.services.consumer_batch_size == 0 || self.services.consumer_batch_size > 10_000 {
            p.push("services.consumer_batch_size: must be between 1 and 10000".into());
        }
        if self.services.visibility_timeout_seconds == 0 {
            p.push("services.visibility_timeout_seconds: must be at least 1".into());
        }
        if non_empty(&self.redis.namespace).is_none() {
            p.push("redis.namespace: must not be empty".into());
        }
        if let Some(d) = non_empty(&self.ui.dir) {
            if !Path::new(d).is_dir() {
                p.push(format!("ui.dir: no such directory `{d}`"));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(SettingsErrors(p))
        }
    }

    /// Where each of the three logical databases lives: a per-database URL, else the shared
    /// URL, else a SQLite file under `data_dir`.
    pub fn db_location(&self, db: &str) -> DbLocation {
        let specific = match db {
            "orion" => &self.database.orion_url,
            "nebula" => &self.database.nebula_url,
            _ => &self.database.events_url,
        };
        match non_empty(specific).or_else(|| non_empty(&self.database.url)) {
            Some(url) => DbLocation::Postgres(url.to_string()),
            None => DbLocation::Sqlite(Path::new(&self.database.data_dir).join(format!("{db}.db"))),
        }
    }

    /// The Redis URL of a broker role (`cache`, `work` or `streams`), if any.
    pub fn redis_url(&self, role: &str) -> Option<String> {
        let specific = match role {
            "cache" => &self.redis.cache_url,
            "work" => &self.redis.work_url,
            _ => &self.redis.streams_url,
        };
        non_empty(specific)
            .or_else(|| non_empty(&self.redis.url))
            .map(str::to_string)
    }

    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        Some((
            PathBuf::from(non_empty(&self.tls.cert_file)?),
            PathBuf::from(non_empty(&self.tls.key_file)?),
        ))
    }

    /// The effective settings as TOML-like text with every password replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(sections) = &mut v {
            for section in sections.values_mut() {
                if let Value::Object(keys) = section {
                    for (k, val) in keys.iter_mut() {
                        if let (true, Value::String(s)) = (k.ends_with("url"), &*val) {
                            *val = Value::String(redact_url(s));
                        }
                    }
                }
            }
        }
        let mut out = String::new();
        if let Value::Object(sections) = v {
            for (name, section) in sections {
                out.push_str(&format!("[{name}]\n"));
                if let Value::Object(keys) = section {
                    for (k, val) in keys {
                        out.push_str(&format!("{k} = {val}\n"));
                    }
                }
                out.push('\n');
            }
        }
        out
    }
}

/// Replaces the password of a URL (`scheme://user:secret@host`) with `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => match raw.rfind('@') {
            Some(at) => format!("***{}", &raw[at..]),
            None => raw.to_string(),
        },
    }
}

fn toml_to_json(text: &str, origin: &str, problems: &mut Vec<String>) -> Map<String, Value> {
    let parsed = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Map<String, Value>>());
    match parsed {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("{origin}: {e}"));
            Map::new()
        }
    }
}

/// `ORRERY__SECTION__KEY=value` pairs as a two-level map of strings.
fn env_layer(env: &[(String, String)]) -> Map<String, Value> {
    let builder = config::Config::builder().add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(Some(env.iter().cloned().collect())),
    );
    builder
        .build()
        .and_then(|c| c.try_deserialize::<Map<String, Value>>())
        .unwrap_or_default()
}

/// Merges `layer` into `merged`, checking each key against `defaults`: unknown sections and keys
/// are problems, and values are coerced to the type of their default (so environment strings
/// become numbers and booleans) or reported.
fn merge_layer(
    defaults: &Map<String, Value>,
    merged: &mut Map<String, Value>,
    layer: Map<String, Value>,
    origin: &str,
    problems: &mut Vec<String>,
) {
    for (section, value) in layer {
        let Some(Value::Object(known)) = defaults.get(&section) else {
            problems.push(format!("{section}: unknown section (from {origin})"));
            continue;
        };
        let Value::Object(keys) = value else {
            problems.push(format!(
                "{section}: must be a table of keys (from {origin})"
            ));
            continue;
        };
        for (key, val) in keys {
            let name = format!("{section}.{key}");
            let Some(default) = known.get(&key) else {
                problems.push(format!("{name}: unknown key (from {origin})"));
                continue;
            };
            match coerce(default, val) {
                Ok(v) => {
                    if let Some(Value::Object(m)) = merged.get_mut(&section) {
                        m.insert(key, v);
                    }
                }
                Err(expected) => {
                    problems.push(format!("{name}: expected {expected} (from {origin})"))
                }
            }
        }
    }
}

fn coerce(default: &Value, val: Value) -> Result<Value, &'static str> {
    match (default, val) {
        (Value::String(_), Value::String(s)) => Ok(Value::String(s)),
        (Value::String(_), v @ (Value::Number(_) | Value::Bool(_))) => {
            Ok(Value::String(v.to_string()))
        }
        (Value::String(_), _) => Err("a string"),
        (Value::Bool(_), Value::Bool(b)) => Ok(Value::Bool(b)),
        (Value::Bool(_), Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err("true or false"),
        },
        (Value::Bool(_), _) => Err("true or false"),
        (Value::Number(_), Value::Number(n)) if n.as_u64().is_some() => Ok(Value::Number(n)),
        (Value::Number(_), Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(n) => Ok(Value::from(n)),
            Err(_) => Err("a non-negative whole number"),
        },
        (Value::Number(_), _) => Err("a non-negative whole number"),
        (_, v) => Ok(v),
    }
}

#[cfg(test)]
mod tests;
