//! Settings: layering, unknown keys, bad values reported together, redaction.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_load_and_use_sqlite_and_memory() {
    let s = Settings::load_from(None, &[]).expect("defaults are valid");
    assert_eq!(s.server.bind, "127.0.0.1:4200");
    assert_eq!(
        s.db_location("orion"),
        DbLocation::Sqlite(PathBuf::from("./data/orion.db"))
    );
    assert_eq!(s.redis_url("cache"), None);
    assert!(s.database.migrate_on_start);
}

#[test]
fn environment_overrides_and_is_coerced() {
    let s = Settings::load_from(
        None,
        &env(&[
            ("ORRERY__SERVER__BIND", "0.0.0.0:9000"),
            ("ORRERY__DATABASE__POOL_SIZE", "3"),
            ("ORRERY__DATABASE__MIGRATE_ON_START", "false"),
            ("ORRERY__DATABASE__URL", "postgres://u:pw@db/orrery"),
            ("ORRERY__DATABASE__EVENTS_URL", "postgres://u:pw@db2/events"),
            ("ORRERY__REDIS__URL", "redis://127.0.0.1:6379/0"),
            ("ORRERY__REDIS__STREAMS_URL", "redis://127.0.0.1:6379/2"),
            ("UNRELATED", "x"),
        ]),
    )
    .expect("valid");
    assert_eq!(s.server.bind, "0.0.0.0:9000");
    assert_eq!(s.database.pool_size, 3);
    assert!(!s.database.migrate_on_start);
    assert_eq!(
        s.db_location("orion"),
        DbLocation::Postgres("postgres://u:pw@db/orrery".into())
    );
    assert_eq!(
        s.db_location("events"),
        DbLocation::Postgres("postgres://u:pw@db2/events".into())
    );
    assert_eq!(
        s.redis_url("work").as_deref(),
        Some("redis://127.0.0.1:6379/0")
    );
    assert_eq!(
        s.redis_url("streams").as_deref(),
        Some("redis://127.0.0.1:6379/2")
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let err = Settings::load_from(
        None,
        &env(&[
            ("ORRERY__SERVER__BIND", "nowhere"),
            ("ORRERY__SERVER__BOGUS", "1"),
            ("ORRERY__NOPE__X", "1"),
            ("ORRERY__DATABASE__POOL_SIZE", "many"),
            ("ORRERY__LOG__FORMAT", "xml"),
            ("ORRERY__TLS__CERT_FILE", "/nonexistent.pem"),
        ]),
    )
    .expect_err("invalid");
    let text = err.to_string();
    for needle in ["server.bogus", "nope", "database.pool_size"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    // Type problems are found before semantic ones; fixing them reveals the rest at once.
    let err = Settings::load_from(
        None,
        &env(&[
            ("ORRERY__SERVER__BIND", "nowhere"),
            ("ORRERY__LOG__FORMAT", "xml"),
            ("ORRERY__TLS__CERT_FILE", "/nonexistent.pem"),
            ("ORRERY__DATABASE__URL", "mysql://u:hunter2@h/db"),
        ]),
    )
    .expect_err("invalid");
    let text = err.to_string();
    for needle in ["server.bind", "log.format", "tls.key_file", "database.url"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    assert!(!text.contains("hunter2"), "password leaked: {text}");
}

#[test]
fn config_file_layer_is_checked_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orrery.toml");
    std::fs::write(
        &path,
        "[server]\nbind = \"127.0.0.1:5000\"\n[database]\nwat = 1\n",
    )
    .expect("write");
    let err = Settings::load_from(Some(&path), &[]).expect_err("unknown key");
    assert!(err.to_string().contains("database.wat"));
    std::fs::write(&path, "[server]\nbind = \"127.0.0.1:5000\"\n").expect("write");
    let s = Settings::load_from(
        Some(&path),
        &env(&[("ORRERY__SERVER__BIND", "127.0.0.1:6000")]),
    )
    .expect("ok");
    assert_eq!(
        s.server.bind, "127.0.0.1:6000",
        "environment wins over the file"
    );
}

#[test]
fn redacted_output_hides_passwords() {
    let s = Settings::load_from(
        None,
        &env(&[
            (
                "ORRERY__DATABASE__URL",
                "postgres://orrery:s3cret@db:5432/orrery",
            ),
            ("ORRERY__REDIS__URL", "redis://:r3dispw@cache:6379/0"),
        ]),
    )
    .expect("ok");
    let out = s.redacted();
    assert!(!out.contains("s3cret") && !out.contains("r3dispw"), "{out}");
    assert!(
        out.contains("postgres://orrery:***@db:5432/orrery"),
        "{out}"
    );
}

#[test]
fn host_names_lose_their_port_only() {
    assert_eq!(host_name("api.example.test:4200"), "api.example.test");
    assert_eq!(host_name("api.example.test"), "api.example.test");
    assert_eq!(host_name("[::1]:4200"), "[::1]");
    assert_eq!(host_name("[::1]"), "[::1]");
}
