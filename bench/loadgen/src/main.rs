//! orrery-loadgen: the compiled load generator behind `bench/run.sh`.
//!
//! It speaks only the public Prefect REST API, so the same binary drives Orrery and the
//! reference Prefect server. Each subcommand prints exactly one JSON line on stdout.
//!
//! ```text
//! orrery-loadgen lifecycle --url http://127.0.0.1:4200/api --clients 16 --duration 20s
//!                          [--warmup 2s] [--threads 1] [--timeout 30s]
//! orrery-loadgen task-lag  --url http://127.0.0.1:4200/api --flow-run-name NAME --expect 1000
//!                          [--ended-file PATH] [--interval 50ms] [--cap 120s] [--start-cap 600s]
//! ```
//!
//! `lifecycle`: one flow, then every client loops create (PENDING) → RUNNING → COMPLETED.
//! A lifecycle counts when both `set_state` calls answered 2xx with `"status": "ACCEPT"` and it
//! finished inside the measured window (after the warm-up, before the deadline). Any non-2xx
//! answer or transport error counts as an error; a 2xx that is not ACCEPT counts as rejected.
//!
//! `task-lag`: started before the flow, polls `POST /task_runs/count` for the COMPLETED task runs
//! of the flow run named `--flow-run-name` until it reaches `--expect` (at most `--cap` after
//! `--ended-file` appears), and reports when that was (`reached_epoch`), how long after the flow
//! run's `end_time` as the server recorded it, and how many were recorded by that `end_time`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MAX_EXAMPLES: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        usage("missing subcommand");
    };
    let opts = Opts::parse(&args[1..]);
    let threads: usize = opts.num("threads", 1);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => fail(&format!("tokio runtime: {e}")),
    };
    let out = match cmd.as_str() {
        "lifecycle" => rt.block_on(lifecycle(&opts)),
        "task-lag" => rt.block_on(task_lag(&opts)),
        other => usage(&format!("unknown subcommand {other:?}")),
    };
    println!("{out}");
}

// ---------------------------------------------------------------------------------------------
// options

struct Opts(Vec<(String, String)>);

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(key) = a.strip_prefix("--") else { usage(&format!("unexpected argument {a:?}")) };
            let (k, v) = match key.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => match it.next() {
                    Some(v) => (key.to_string(), v.clone()),
                    None => usage(&format!("--{key} needs a value")),
                },
            };
            pairs.push((k, v));
        }
        Opts(pairs)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn req(&self, k: &str) -> String {
        match self.get(k) {
            Some(v) => v.trim_end_matches('/').to_string(),
            None => usage(&format!("--{k} is required")),
        }
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        match self.get(k) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| usage(&format!("--{k}: not a number: {v:?}"))),
        }
    }
    fn dur(&self, k: &str, default: Duration) -> Duration {
        match self.get(k) {
            None => default,
            Some(v) => parse_duration(v).unwrap_or_else(|| usage(&format!("--{k}: bad duration {v:?}"))),
        }
    }
}

/// "20s", "500ms", "2m", or a bare number of seconds ("1.5").
fn parse_duration(s: &str) -> Option<Duration> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then(|| Duration::from_secs_f64(v * scale))
}

fn usage(msg: &str) -> ! {
    eprintln!("orrery-loadgen: {msg}");
    eprintln!("usage: orrery-loadgen lifecycle --url URL [--clients 16] [--duration 20s] [--warmup 0s] [--threads 1] [--timeout 30s]");
    eprintln!("       orrery-loadgen task-lag --url URL --flow-run-name NAME [--expect 1000] [--ended-file PATH] [--interval 50ms] [--cap 120s] [--start-cap 600s]");
    std::process::exit(2)
}

fn fail(msg: &str) -> ! {
    eprintln!("orrery-loadgen: {msg}");
    std::process::exit(1)
}

fn client(timeout: Duration, clients: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(clients.max(1) * 2)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|e| fail(&format!("http client: {e}")))
}

// ---------------------------------------------------------------------------------------------
// lifecycle

#[derive(Default)]
struct Tally {
    /// Completed inside the measured window.
    lifecycles: u64,
    /// Completed at all, warm-up and overrun included (for CPU time per lifecycle).
    lifecycles_total: u64,
    errors: u64,
    rejected: u64,
    requests: u64,
    set_state_us: Vec<u64>,
    create_us: Vec<u64>,
}

struct Shared {
    examples: Mutex<Vec<Value>>,
    error_kinds: Mutex<Vec<(String, u64)>>,
}

impl Shared {
    /// Counts an error of this kind and keeps its body: the first of every kind, and up to
    /// MAX_EXAMPLES in all.
    fn note(&self, kind: String, example: Value) {
        let mut first_of_kind = false;
        if let Ok(mut kinds) = self.error_kinds.lock() {
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => {
                    kinds.push((kind, 1));
                    first_of_kind = true;
                }
            }
        }
        if let Ok(mut ex) = self.examples.lock() {
            if first_of_kind || ex.len() < MAX_EXAMPLES {
                ex.push(example);
            }
        }
    }
}

enum Outcome {
    Ok(Value),
    /// 2xx, but the orchestration answer was not ACCEPT.
    Rejected(Value),
    Error,
}

/// "outer: cause: root cause", so a transport error says what happened (reset, refused, ...).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

async fn post(
    http: &reqwest::Client,
    shared: &Shared,
    step: &str,
    url: &str,
    body: &Value,
) -> Outcome {
    match http.post(url).json(body).send().await {
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            shared.note(format!("{step}: {kind}"), json!({"step": step, "error": error_chain(&e)}));
            Outcome::Error
        }
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                let snippet: String = text.chars().take(400).collect();
                shared.note(
                    format!("{step}: HTTP {}", status.as_u16()),
                    json!({"step": step, "status": status.as_u16(), "body": snippet}),
                );
                return Outcome::Error;
            }
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match v.get("status").and_then(Value::as_str) {
                Some("ACCEPT") | None => Outcome::Ok(v),
                Some(_) => {
                    let snippet: String = text.chars().take(400).collect();
                    shared.note(format!("{step}: not ACCEPT"), json!({"step": step, "status": status.as_u16(), "body": snippet}));
                    Outcome::Rejected(v)
                }
            }
        }
    }
}

async fn lifecycle(opts: &Opts) -> Value {
    let api = opts.req("url");
    let clients: usize = opts.num("clients", 16);
    let duration = opts.dur("duration", Duration::from_secs(20));
    let warmup = opts.dur("warmup", Duration::ZERO);
    let timeout = opts.dur("timeout", Duration::from_secs(30));
    let http = client(timeout, clients);

    let flow = match http.post(format!("{api}/flows/")).json(&json!({"name": "bench"})).send().await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
        Ok(r) => {
            let s = r.status();
            fail(&format!("POST /flows/ answered {s}: {}", r.text().await.unwrap_or_default()))
        }
        Err(e) => fail(&format!("POST /flows/: {e}")),
    };
    let Some(flow_id) = flow.get("id").and_then(Value::as_str).map(str::to_string) else {
        fail(&format!("POST /flows/ returned no id: {flow}"))
    };

    let shared = Arc::new(Shared { examples: Mutex::new(Vec::new()), error_kinds: Mutex::new(Vec::new()) });
    let start = Instant::now();
    let window_start = start + warmup;
    let deadline = window_start + duration;

    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients {
        let http = http.clone();
        let shared = shared.clone();
        let api = api.clone();
        let flow_id = flow_id.clone();
        handles.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let create_url = format!("{api}/flow_runs/");
            let create_body = json!({"flow_id": flow_id, "state": {"type": "PENDING"}});
            let running = json!({"state": {"type": "RUNNING"}});
            let completed = json!({"state": {"type": "COMPLETED"}});
            while Instant::now() < deadline {
                let measured = Instant::now() >= window_start;
                let t0 = Instant::now();
                t.requests += 1;
                let run = match post(&http, &shared, "create", &create_url, &create_body).await {
                    Outcome::Ok(v) | Outcome::Rejected(v) => v,
                    Outcome::Error => {
                        t.errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if measured {
                    t.create_us.push(t0.elapsed().as_micros() as u64);
                }
                let Some(id) = run.get("id").and_then(Value::as_str) else {
                    t.errors += 1;
                    shared.note("create: no id".into(), json!({"step": "create", "body": run.to_string()}));
                    continue;
                };
                let set_url = format!("{api}/flow_runs/{id}/set_state");
                let mut ok = true;
                for (step, body) in [("set_state RUNNING", &running), ("set_state COMPLETED", &completed)] {
                    let t1 = Instant::now();
                    t.requests += 1;
                    let outcome = post(&http, &shared, step, &set_url, body).await;
                    let us = t1.elapsed().as_micros() as u64;
                    match outcome {
                        Outcome::Ok(_) => {
                            if measured {
                                t.set_state_us.push(us);
                            }
                        }
                        Outcome::Rejected(_) => {
                            if measured {
                                t.set_state_us.push(us);
                            }
                            t.rejected += 1;
                            ok = false;
                            break;
                        }
                        Outcome::Error => {
                            t.errors += 1;
                            ok = false;
                            break;
                        }
                    }
                }
                if ok {
                    t.lifecycles_total += 1;
                    if measured && Instant::now() <= deadline {
                        t.lifecycles += 1;
                    }
                }
            }
            t
        }));
    }

    let mut total = Tally::default();
    for h in handles {
        match h.await {
            Ok(t) => {
                total.lifecycles += t.lifecycles;
                total.lifecycles_total += t.lifecycles_total;
                total.errors += t.errors;
                total.rejected += t.rejected;
                total.requests += t.requests;
                total.set_state_us.extend(t.set_state_us);
                total.create_us.extend(t.create_us);
            }
            Err(e) => fail(&format!("client task panicked: {e}")),
        }
    }
    let secs = duration.as_secs_f64();
    let examples = shared.examples.lock().map(|v| v.clone()).unwrap_or_default();
    let kinds: serde_json::Map<String, Value> = shared
        .error_kinds
        .lock()
        .map(|v| v.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
        .unwrap_or_default();
    json!({
        "bench": "lifecycle",
        "url": api,
        "clients": clients,
        "duration_s": secs,
        "warmup_s": warmup.as_secs_f64(),
        "lifecycles": total.lifecycles,
        "lifecycles_per_s": round2(total.lifecycles as f64 / secs),
        "lifecycles_total": total.lifecycles_total,
        "elapsed_s": round3(start.elapsed().as_secs_f64()),
        "requests": total.requests,
        "errors": total.errors,
        "rejected": total.rejected,
        "set_state_ms": percentiles(&mut total.set_state_us),
        "create_ms": percentiles(&mut total.create_us),
        "loadgen_cpu_s": own_cpu_seconds(),
        "error_kinds": kinds,
        "error_examples": examples,
    })
}

/// This process's user + system CPU time (Linux /proc), so the report can tell how much of the
/// machine the load generator itself took.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(round3(ticks / 100.0)) // USER_HZ is 100 on Linux
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percentiles(us: &mut [u64]) -> Value {
    if us.is_empty() {
        return json!({"n": 0, "p50": null, "p95": null, "p99": null, "max": null});
    }
    us.sort_unstable();
    let at = |q: f64| {
        let i = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1;
        round3(us[i] as f64 / 1000.0)
    };
    json!({"n": us.len(), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)})
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// task-lag

fn now_epoch() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

async fn task_lag(opts: &Opts) -> Value {
    let api = opts.req("url");
    let name = opts.req("flow-run-name");
    let expect: u64 = opts.num("expect", 1000);
    let interval = opts.dur("interval", Duration::from_millis(50));
    let cap = opts.dur("cap", Duration::from_secs(120));
    let start_cap = opts.dur("start-cap", Duration::from_secs(600));
    let ended_file = opts.get("ended-file").map(std::path::PathBuf::from);
    let http = client(Duration::from_secs(10), 1);

    let start = Instant::now();
    let body = json!({
        "flow_runs": {"name": {"any_": [name]}},
        "task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    });
    let url = format!("{api}/task_runs/count");
    let mut polls = 0u64;
    let mut errors = 0u64;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut reached_epoch = None;
    // The cap runs from the flow's end (the client writes --ended-file then), or from the start.
    let mut ended_at: Option<Instant> = if ended_file.is_none() { Some(start) } else { None };
    loop {
        polls += 1;
        match http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                let now = now_epoch();
                if let Some(n) = r.json::<Value>().await.ok().and_then(|v| v.as_u64()) {
                    samples.push((now, n));
                    if n >= expect {
                        reached_epoch = Some(now);
                        break;
                    }
                }
            }
            _ => errors += 1,
        }
        if ended_at.is_none() && ended_file.as_ref().is_some_and(|f| f.exists()) {
            ended_at = Some(Instant::now());
        }
        match ended_at {
            Some(t) if t.elapsed() >= cap => break,
            None if start.elapsed() >= start_cap => break,
            _ => {}
        }
        tokio::time::sleep(interval).await;
    }

    // The flow run and its end as the server recorded it (same machine, same clock).
    let run = match http
        .post(format!("{api}/flow_runs/filter"))
        .json(&json!({"flow_runs": {"name": {"any_": [name]}}, "limit": 1}))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned())),
        _ => None,
    };
    let end_epoch = run
        .as_ref()
        .and_then(|v| v.get("end_time").and_then(Value::as_str))
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_micros() as f64 / 1e6);
    let count_at_end = end_epoch.map(|e| samples.iter().take_while(|(t, _)| *t <= e).last().map_or(0, |(_, n)| *n));
    let polls_after_end = end_epoch.map(|e| samples.iter().filter(|(t, _)| *t > e).count());
    json!({
        "bench": "task-lag",
        "url": api,
        "flow_run_name": name,
        "flow_run": run.as_ref().and_then(|v| v.get("id")).cloned(),
        "expect": expect,
        "reached": reached_epoch.is_some(),
        "last_count": samples.last().map(|(_, n)| *n),
        "count_at_end_time": count_at_end,
        "polls": polls,
        "polls_after_end_time": polls_after_end,
        "poll_errors": errors,
        "reached_epoch": reached_epoch,
        "end_time_epoch": end_epoch,
        "lag_from_end_time_s": match (reached_epoch, end_epoch) {
            (Some(r), Some(e)) => json!(round3((r - e).max(0.0))),
            _ => Value::Null,
        },
    })
}
