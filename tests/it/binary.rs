//! The `orrery` binary as an operator runs it: settings errors, unreachable databases, the
//! embedded default from an empty directory, `config show`, `migrate` and graceful shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_orrery");

fn orrery(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn bad_settings_print_every_problem_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = orrery(dir.path())
        .env("ORRERY__SERVER__BOGUS", "1")
        .env("ORRERY__DATABASE__POOL_SIZE", "lots")
        .env("ORRERY__REDIS__NOPE", "x")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["server.bogus", "database.pool_size", "redis.nope"] {
        assert!(err.contains(key), "{key} not in {err}");
    }
}

#[test]
fn unreachable_database_names_it_and_hides_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let out = orrery(dir.path())
        .env(
            "ORRERY__DATABASE__ORION_URL",
            format!("postgres://orrery:hunter2secret@127.0.0.1:{port}/orion"),
        )
        .env("ORRERY__DATABASE__CONNECT_TIMEOUT_SECONDS", "3")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("orion"), "{text}");
    assert!(text.contains("orrery:***@127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2secret"), "password leaked: {text}");
}

#[test]
fn config_show_redacts_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = orrery(dir.path())
        .args(["config", "show"])
        .env("ORRERY__REDIS__URL", "redis://:topsecret@cache:6379/0")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[redis]") && text.contains("cache:6379"),
        "{text}"
    );
    assert!(!text.contains("topsecret"), "{text}");
}

#[test]
fn migrate_then_serve_embedded_default_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = orrery(dir.path())
        .arg("migrate")
        .output()
        .expect("run migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for db in ["orion", "nebula", "events"] {
        assert!(
            dir.path().join("data").join(format!("{db}.db")).is_file(),
            "{db}.db missing"
        );
    }
    let port = free_port();
    let mut child = orrery(dir.path())
        .env("ORRERY__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("ORRERY__DATABASE__MIGRATE_ON_START", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(b) = http_get(port, "/api/health") {
            break b;
        }
        assert!(Instant::now() < deadline, "server did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.ends_with("true"), "{body}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "graceful exit: {st:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    use std::io::Read;
    child.stderr.take().map(|mut e| e.read_to_string(&mut log));
    assert!(
        log.contains("orion: sqlite"),
        "start line names each store's mode: {log}"
    );
}

/// A minimal HTTP/1.1 GET (the binary test avoids an async runtime).
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.starts_with("HTTP/1.1 200")
        .then(|| buf.trim_end().to_string())
}
