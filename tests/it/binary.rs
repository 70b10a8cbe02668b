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

/// Sends `request` (a whole HTTP/1.1 request) and returns the whole answer.
fn http_raw(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

/// A server process killed when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One access-log line per request, in the JSON log format: method, path with the query's
/// credentials redacted, status, duration, bytes, client, and the request id (the client's, or
/// a new one, returned in `X-Request-Id`); probes only at DEBUG; `log.access=false` turns it off.
#[test]
fn every_request_gets_one_access_log_line_with_its_request_id() {
    for enabled in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut server = Server(
            orrery(dir.path())
                .env("ORRERY__SERVER__BIND", format!("127.0.0.1:{port}"))
                .env("ORRERY__LOG__FORMAT", "json")
                .env("ORRERY__LOG__ACCESS", enabled.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        // Ready, not just alive: the 404 below needs the migrated databases.
        while http_get(port, "/api/ready").is_none() {
            assert!(Instant::now() < deadline, "server did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let answer = http_raw(
            port,
            "GET /api/version?api_key=s3cret&x=1 HTTP/1.1\r\nHost: localhost\r\n\
             X-Request-Id: req-42\r\nAuthorization: Bearer t0ken\r\nConnection: close\r\n\r\n",
        );
        let answer_404 = http_raw(
            port,
            "GET /api/flows/nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        let generated = answer_404.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(|id| id.trim().to_string())
        });
        if enabled {
            assert!(
                answer.to_ascii_lowercase().contains("x-request-id: req-42"),
                "{answer}"
            );
            assert_eq!(
                generated.as_ref().map(String::len),
                Some(32),
                "{answer_404}"
            );
        } else {
            assert_eq!(generated, None, "{answer_404}");
        }
        Command::new("kill")
            .args(["-TERM", &server.0.id().to_string()])
            .status()
            .expect("kill");
        server.0.wait().expect("wait");
        let mut log = String::new();
        use std::io::Read;
        server
            .0
            .stderr
            .take()
            .map(|mut e| e.read_to_string(&mut log));
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "orrery::access")
            .collect();
        if !enabled {
            assert!(lines.is_empty(), "{log}");
            continue;
        }
        assert_eq!(lines.len(), 2, "probes are not logged at INFO: {log}");
        let v = &lines[0];
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/api/version?api_key=***&x=1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["request_id"], "req-42");
        assert_eq!(v["client"], "127.0.0.1");
        assert!(v["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{v}");
        assert!(
            v["bytes"]
                .as_str()
                .is_some_and(|b| b.parse::<u64>().is_ok_and(|n| n > 0)),
            "{v}"
        );
        assert_eq!(v["level"], "INFO");
        assert!(
            !log.contains("s3cret") && !log.contains("t0ken"),
            "no secrets: {log}"
        );
        assert_eq!(lines[1]["status"], 404);
        assert_eq!(lines[1]["request_id"].as_str(), generated.as_deref());
    }
}

/// Runs `orrery ARGS` in `dir` with `stdin` as its input; (success, stdout, stderr).
fn run_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = orrery(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn keys_and_passwords_appear_in_no_log_line_or_error_body() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "correct-horse-battery-77";
    let (ok, out, err) = run_cli(
        dir.path(),
        &[
            "user",
            "add",
            "ada@example.com",
            "--account-role",
            "owner",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(ok, "{out}{err}");
    let (ok, key, err) = run_cli(
        dir.path(),
        &[
            "api-key",
            "create",
            "--user",
            "ada@example.com",
            "--name",
            "k",
        ],
        "",
    );
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("pnu_") && !err.contains(&key), "{err}");
    let (_, listed, _) = run_cli(dir.path(), &["api-key", "list"], "");
    assert!(!listed.contains(&key), "{listed}");

    let port = free_port();
    let mut server = Server(
        orrery(dir.path())
            .env("ORRERY__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("ORRERY__AUTH__MODE", "required")
            .env("ORRERY__LOG__FORMAT", "json")
            .env("ORRERY__LOG__ACCESS", "true")
            .env("ORRERY__LOG__LEVEL", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/api/ready").is_none() {
        assert!(Instant::now() < deadline, "server did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let wrong_key = format!("pnu_{}", "Q".repeat(36));
    let mut answers = String::new();
    for auth in [
        format!("Bearer {key}"),
        format!("Basic {}", b64(&format!("anything:{key}"))),
        format!("Basic {}", b64(&format!("ada@example.com:{password}"))),
        format!(
            "Basic {}",
            b64(&format!("ada@example.com:{password}-wrong"))
        ),
        format!("Bearer {wrong_key}"),
    ] {
        answers.push_str(&http_raw(
            port,
            &format!(
                "GET /api/me?token={key} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
            ),
        ));
    }
    for body in [
        format!(r#"{{"email": "ada@example.com", "password": "{password}"}}"#),
        format!(r#"{{"email": 5, "password": "{password}"}}"#),
        format!(r#"{{"email": "ada@example.com", "password": "{password}""#),
    ] {
        answers.push_str(&http_raw(
            port,
            &format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        ));
    }
    assert!(answers.contains("HTTP/1.1 200"), "{answers}");
    assert!(answers.contains("HTTP/1.1 401"), "{answers}");
    assert!(answers.contains("HTTP/1.1 422"), "{answers}");
    Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    server.0.wait().expect("wait");
    let mut log = String::new();
    use std::io::Read;
    if let Some(mut e) = server.0.stderr.take() {
        e.read_to_string(&mut log).expect("stderr");
    }
    if let Some(mut o) = server.0.stdout.take() {
        o.read_to_string(&mut log).expect("stdout");
    }
    assert!(log.contains("orrery::access"), "the access log ran: {log}");
    let key_random = &key[4..];
    for secret in [key_random, password, &wrong_key[4..]] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
        // The 422 names the field; the answer never echoes the body, and no answer holds a key.
        let bodies: String = answers
            .split("\r\n\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!bodies.contains(secret), "{secret} in an answer: {answers}");
    }
    let (_, shown, _) = run_cli(dir.path(), &["config", "show"], "");
    assert!(
        !shown.contains(key_random) && !shown.contains(password),
        "{shown}"
    );
}

#[test]
fn teams_are_made_and_granted_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let steps: &[&[&str]] = &[
        &["user", "add", "ann@example.com"],
        &["team", "add", "data", "--description", "the data team"],
        &["team", "add-member", "data", "--user", "ann@example.com"],
        &[
            "access",
            "grant",
            "--workspace",
            "default",
            "--team",
            "data",
            "--role",
            "developer",
        ],
    ];
    for args in steps {
        let (ok, out, err) = run_cli(dir.path(), args, "");
        assert!(ok, "{args:?}: {out}{err}");
    }
    let (ok, _, err) = run_cli(dir.path(), &["team", "add", "data"], "");
    assert!(!ok && err.contains("a team `data` exists"), "{err}");
    let (ok, _, err) = run_cli(
        dir.path(),
        &["team", "add-member", "nope", "--user", "ann@example.com"],
        "",
    );
    assert!(!ok && err.contains("no team is named `nope`"), "{err}");
    let (ok, key, err) = run_cli(
        dir.path(),
        &[
            "api-key",
            "create",
            "--user",
            "ann@example.com",
            "--name",
            "k",
        ],
        "",
    );
    assert!(ok, "{err}");
    // The team's role is the member's: a developer may create flows.
    let port = free_port();
    let _server = Server(
        orrery(dir.path())
            .env("ORRERY__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("ORRERY__AUTH__MODE", "required")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/api/ready").is_none() {
        assert!(Instant::now() < deadline, "server did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = r#"{"name": "from-a-team"}"#;
    let answer = http_raw(
        port,
        &format!(
            "POST /api/flows/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            key.trim(),
            body.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
