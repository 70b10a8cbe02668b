//! orrery-loadgen: the compiled load generator behind `bench/run.sh`.
//!
//! It speaks only the public Prefect REST API, so the same binary drives Orrery and the
//! reference Prefect server. Each subcommand prints exactly one JSON line on stdout.
//!
//! ```text
//! orrery-loadgen lifecycle --url http://127.0.0.1:4200/api --clients 16 --duration 20s
//!                          [--warmup 2s] [--threads 1] [--timeout 30s]
//!                          (--url may list several replicas, comma-separated: clients in turn)
//! orrery-loadgen task-lag  --url http://127.0.0.1:4200/api --flow-run-name NAME --expect 1000
//!                          [--ended-file PATH] [--interval 50ms] [--cap 120s] [--start-cap 600s]
//! orrery-loadgen sched-setup --url URL [--deployments 1000] [--interval 60] [--concurrency 8]
//! orrery-loadgen sched-watch --url URL [--expect 60000] [--interval 200ms] [--quiet 5s] [--cap 600s]
//! orrery-loadgen poll-setup  --url URL [--queues 10] [--runs-per-queue 1000] [--anchor EPOCH]
//! orrery-loadgen poll        --url URL --before EPOCH [--duration 15s] [--warmup 20] [--expect 100]
//! ```
//!
//! `sched-setup`: one flow, one process work pool, then `--deployments` deployments, each with an
//! interval schedule of `--interval` seconds (anchored on a whole minute, UTC), `--concurrency`
//! requests at a time. Run it while the server's scheduler is off.
//!
//! `sched-watch`: started right after a server with (only) its scheduler on became ready; polls
//! `POST /flow_runs/count` (SCHEDULED runs; nothing else creates any) every `--interval` and
//! reports when the first run appeared and when the count last changed, counted from its own
//! start (connection errors while the server starts count as poll errors). It stops once the
//! count has reached `--expect` and not changed for `--quiet`, at the latest `--cap` after its
//! start.
//!
//! `poll-setup`: one pool with `--queues` queues and one deployment per queue, each with a
//! 1-second interval schedule anchored at `--anchor` (default: two hours from now, whole minute);
//! `POST /deployments/{id}/schedule` then creates `--runs-per-queue` runs per deployment from the
//! anchor on. Run it while the server's scheduler is off. Prints the anchor.
//!
//! `poll`: one client calls `POST /work_pools/{pool}/get_scheduled_flow_runs` with
//! `scheduled_before` = `--before` (epoch seconds) back to back for `--duration` after
//! `--warmup` calls, like a worker's poll, and reports the latency percentiles and how many runs
//! each answer held.
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
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => fail(&format!("tokio runtime: {e}")),
    };
    let out = match cmd.as_str() {
        "lifecycle" => rt.block_on(lifecycle(&opts)),
        "task-lag" => rt.block_on(task_lag(&opts)),
        "sched-setup" => rt.block_on(sched_setup(&opts)),
        "sched-watch" => rt.block_on(sched_watch(&opts)),
        "poll-setup" => rt.block_on(poll_setup(&opts)),
        "poll" => rt.block_on(poll(&opts)),
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
            let Some(key) = a.strip_prefix("--") else {
                usage(&format!("unexpected argument {a:?}"))
            };
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
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
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
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| usage(&format!("--{k}: not a number: {v:?}"))),
        }
    }
    fn dur(&self, k: &str, default: Duration) -> Duration {
        match self.get(k) {
            None => default,
            Some(v) => {
                parse_duration(v).unwrap_or_else(|| usage(&format!("--{k}: bad duration {v:?}")))
            }
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
    eprintln!("       orrery-loadgen sched-setup --url URL [--deployments 1000] [--interval 60] [--concurrency 8] [--pool NAME]");
    eprintln!("       orrery-loadgen sched-watch --url URL [--expect 60000] [--interval 200ms] [--quiet 5s] [--cap 600s]");
    eprintln!("       orrery-loadgen poll-setup --url URL [--queues 10] [--runs-per-queue 1000] [--anchor EPOCH] [--pool NAME]");
    eprintln!("       orrery-loadgen poll --url URL --before EPOCH [--duration 15s] [--warmup 20] [--expect N] [--pool NAME]");
    std::process::exit(2)
}

fn fail(msg: &str) -> ! {
    eprintln!("orrery-loadgen: {msg}");
    std::process::exit(1)
}

/// An HTTP client; with `LOADGEN_AUTHORIZATION` set, every request carries it as its
/// `Authorization` header (`Bearer pnu_...`, for servers that require a credential).
fn client(timeout: Duration, clients: usize) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(auth) = std::env::var("LOADGEN_AUTHORIZATION")
        .ok()
        .filter(|a| !a.is_empty())
    {
        let value = reqwest::header::HeaderValue::from_str(&auth)
            .unwrap_or_else(|_| fail("LOADGEN_AUTHORIZATION is not a valid header value"));
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
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
            shared.note(
                format!("{step}: {kind}"),
                json!({"step": step, "error": error_chain(&e)}),
            );
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
                    shared.note(
                        format!("{step}: not ACCEPT"),
                        json!({"step": step, "status": status.as_u16(), "body": snippet}),
                    );
                    Outcome::Rejected(v)
                }
            }
        }
    }
}

async fn lifecycle(opts: &Opts) -> Value {
    // Several URLs (comma-separated: replicas of one installation) take the clients in turn.
    let urls: Vec<String> = opts.req("url").split(',').map(str::to_string).collect();
    let api = urls[0].clone();
    let clients: usize = opts.num("clients", 16);
    let duration = opts.dur("duration", Duration::from_secs(20));
    let warmup = opts.dur("warmup", Duration::ZERO);
    let timeout = opts.dur("timeout", Duration::from_secs(30));
    let http = client(timeout, clients);

    let flow = match http
        .post(format!("{api}/flows/"))
        .json(&json!({"name": "bench"}))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
        Ok(r) => {
            let s = r.status();
            fail(&format!(
                "POST /flows/ answered {s}: {}",
                r.text().await.unwrap_or_default()
            ))
        }
        Err(e) => fail(&format!("POST /flows/: {e}")),
    };
    let Some(flow_id) = flow.get("id").and_then(Value::as_str).map(str::to_string) else {
        fail(&format!("POST /flows/ returned no id: {flow}"))
    };

    let shared = Arc::new(Shared {
        examples: Mutex::new(Vec::new()),
        error_kinds: Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let window_start = start + warmup;
    let deadline = window_start + duration;

    let mut handles = Vec::with_capacity(clients);
    for i in 0..clients {
        let http = http.clone();
        let shared = shared.clone();
        let api = urls[i % urls.len()].clone();
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
                    shared.note(
                        "create: no id".into(),
                        json!({"step": "create", "body": run.to_string()}),
                    );
                    continue;
                };
                let set_url = format!("{api}/flow_runs/{id}/set_state");
                let mut ok = true;
                for (step, body) in [
                    ("set_state RUNNING", &running),
                    ("set_state COMPLETED", &completed),
                ] {
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
    let examples = shared
        .examples
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let kinds: serde_json::Map<String, Value> = shared
        .error_kinds
        .lock()
        .map(|v| v.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
        .unwrap_or_default();
    json!({
        "bench": "lifecycle",
        "url": urls.join(","),
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
    let mut ended_at: Option<Instant> = if ended_file.is_none() {
        Some(start)
    } else {
        None
    };
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

    // The flow run and its end as the server recorded it (same machine, same clock). Every task
    // run can be recorded before the flow run's own final state arrives; then wait for its
    // end_time (the lag is 0).
    let fetch_run = || async {
        match http
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
        }
    };
    let end_of = |run: &Option<Value>| {
        run.as_ref()
            .and_then(|v| v.get("end_time").and_then(Value::as_str))
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_micros() as f64 / 1e6)
    };
    let waited = Instant::now();
    let mut run = fetch_run().await;
    while reached_epoch.is_some() && end_of(&run).is_none() && waited.elapsed() < cap {
        tokio::time::sleep(interval).await;
        run = fetch_run().await;
    }
    let end_epoch = end_of(&run);
    let count_at_end = end_epoch.map(|e| {
        samples
            .iter()
            .take_while(|(t, _)| *t <= e)
            .last()
            .map_or(0, |(_, n)| *n)
    });
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

// ---------------------------------------------------------------------------------------------
// scheduler: setup and watch

async fn post_ok(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    match http.post(url).json(body).send().await {
        Err(e) => Err(format!("POST {url}: {}", error_chain(&e))),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!(
                    "POST {url}: {status}: {}",
                    text.chars().take(300).collect::<String>()
                ));
            }
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    }
}

fn iso(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

async fn create_flow_and_pool(http: &reqwest::Client, api: &str, flow: &str, pool: &str) -> String {
    let flow = post_ok(http, &format!("{api}/flows/"), &json!({"name": flow}))
        .await
        .unwrap_or_else(|e| fail(&e));
    let Some(flow_id) = flow.get("id").and_then(Value::as_str).map(str::to_string) else {
        fail(&format!("POST /flows/ returned no id: {flow}"))
    };
    if let Err(e) = post_ok(
        http,
        &format!("{api}/work_pools/"),
        &json!({"name": pool, "type": "process"}),
    )
    .await
    {
        if !e.contains("409") {
            fail(&e)
        }
    }
    flow_id
}

async fn sched_setup(opts: &Opts) -> Value {
    let api = opts.req("url");
    let n: usize = opts.num("deployments", 1000);
    let interval: f64 = opts.num("interval", 60.0);
    let concurrency: usize = opts.num("concurrency", 8);
    let pool: String = opts.get("pool").unwrap_or("bench-sched").to_string();
    let http = client(Duration::from_secs(120), concurrency);
    let flow_id = create_flow_and_pool(&http, &api, "bench-sched", &pool).await;
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let (http, api, flow_id, pool, next, errors) = (
            http.clone(),
            api.clone(),
            flow_id.clone(),
            pool.clone(),
            next.clone(),
            errors.clone(),
        );
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = json!({
                    "name": format!("d{i:05}"), "flow_id": flow_id, "work_pool_name": pool,
                    "tags": ["bench"], "parameters": {"i": i},
                    "schedules": [{"schedule": {"interval": interval, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}, "active": true}],
                });
                if let Err(e) = post_ok(&http, &format!("{api}/deployments/"), &body).await {
                    if let Ok(mut v) = errors.lock() {
                        v.push(e);
                    }
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let errors = errors.lock().map(|v| v.clone()).unwrap_or_default();
    if !errors.is_empty() {
        fail(&format!(
            "{} deployments failed, e.g. {}",
            errors.len(),
            errors[0]
        ));
    }
    json!({"bench": "sched-setup", "url": api, "deployments": n, "interval_s": interval,
           "elapsed_s": round3(start.elapsed().as_secs_f64())})
}

async fn count_scheduled(http: &reqwest::Client, api: &str) -> Option<u64> {
    let body = json!({"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}});
    post_ok(http, &format!("{api}/flow_runs/count"), &body)
        .await
        .ok()
        .and_then(|v| v.as_u64())
}

async fn sched_watch(opts: &Opts) -> Value {
    let api = opts.req("url");
    let expect: u64 = opts.num("expect", 60_000);
    let interval = opts.dur("interval", Duration::from_millis(200));
    let quiet = opts.dur("quiet", Duration::from_secs(5));
    let cap = opts.dur("cap", Duration::from_secs(600));
    let http = client(Duration::from_secs(30), 1);
    let start = Instant::now();
    let start_epoch = now_epoch();
    let (mut last, mut first_at, mut changed_at) = (0u64, None::<f64>, 0.0f64);
    let mut reached_at: Option<f64> = None;
    let mut polls = 0u64;
    let mut errors = 0u64;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    loop {
        polls += 1;
        match count_scheduled(&http, &api).await {
            Some(n) => {
                let t = start.elapsed().as_secs_f64();
                if n > 0 && first_at.is_none() {
                    first_at = Some(t);
                }
                if n >= expect && reached_at.is_none() {
                    reached_at = Some(t);
                }
                if n != last {
                    last = n;
                    changed_at = t;
                    samples.push((round3(t), n));
                }
            }
            None => errors += 1,
        }
        let since_change = start.elapsed().as_secs_f64() - changed_at;
        if last >= expect && since_change >= quiet.as_secs_f64() {
            break;
        }
        if start.elapsed() >= cap {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    // At most ~40 samples in the report.
    let step = (samples.len() / 40).max(1);
    let trace: Vec<Value> = samples
        .iter()
        .step_by(step)
        .map(|(t, n)| json!([t, n]))
        .collect();
    json!({
        "bench": "sched-watch", "url": api, "expect": expect, "start_epoch": start_epoch,
        "runs": last, "reached": last >= expect,
        "first_run_s": first_at.map(round3), "reached_s": reached_at.map(round3), "last_change_s": round3(changed_at),
        "runs_per_s": if changed_at > 0.0 { json!(round2(last as f64 / changed_at)) } else { Value::Null },
        "polls": polls, "poll_errors": errors, "trace": trace,
    })
}

// ---------------------------------------------------------------------------------------------
// get_scheduled_flow_runs: setup and poll

async fn poll_setup(opts: &Opts) -> Value {
    let api = opts.req("url");
    let queues: usize = opts.num("queues", 10);
    let per_queue: usize = opts.num("runs-per-queue", 1000);
    let pool: String = opts.get("pool").unwrap_or("bench-poll").to_string();
    let now = chrono::Utc::now().timestamp();
    let anchor: i64 = opts.num("anchor", (now + 7200) / 60 * 60);
    let http = client(Duration::from_secs(300), 1);
    let start = Instant::now();
    let flow_id = create_flow_and_pool(&http, &api, "bench-poll", &pool).await;
    let mut created = 0u64;
    for q in 0..queues {
        let qname = format!("q{q}");
        post_ok(
            &http,
            &format!("{api}/work_pools/{pool}/queues/"),
            &json!({"name": qname}),
        )
        .await
        .unwrap_or_else(|e| fail(&e));
        let d = post_ok(&http, &format!("{api}/deployments/"), &json!({
            "name": format!("poll-{q}"), "flow_id": flow_id, "work_pool_name": pool, "work_queue_name": qname,
            "schedules": [{"schedule": {"interval": 1, "anchor_date": iso(anchor), "timezone": "UTC"}, "active": true}],
        }))
        .await
        .unwrap_or_else(|e| fail(&e));
        let Some(id) = d.get("id").and_then(Value::as_str) else {
            fail(&format!("no deployment id: {d}"))
        };
        post_ok(
            &http,
            &format!("{api}/deployments/{id}/schedule"),
            &json!({
                "start_time": iso(anchor), "end_time": iso(anchor + per_queue as i64 - 1),
                "min_runs": per_queue, "max_runs": per_queue, "min_time": 0,
            }),
        )
        .await
        .unwrap_or_else(|e| fail(&e));
        created += per_queue as u64;
    }
    let total = count_scheduled(&http, &api).await;
    json!({"bench": "poll-setup", "url": api, "pool": pool, "queues": queues, "anchor_epoch": anchor,
           "runs_requested": created, "scheduled_runs": total, "elapsed_s": round3(start.elapsed().as_secs_f64())})
}

async fn poll(opts: &Opts) -> Value {
    let api = opts.req("url");
    let pool: String = opts.get("pool").unwrap_or("bench-poll").to_string();
    let before: f64 = opts.num("before", 0.0);
    let duration = opts.dur("duration", Duration::from_secs(15));
    let warmup: usize = opts.num("warmup", 20);
    let expect: Option<usize> = opts.get("expect").and_then(|v| v.parse().ok());
    let http = client(Duration::from_secs(60), 1);
    let before_iso = chrono::DateTime::from_timestamp_micros((before * 1e6) as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| fail("--before: bad epoch"));
    let url = format!("{api}/work_pools/{pool}/get_scheduled_flow_runs");
    let body = json!({"scheduled_before": before_iso});
    let mut lat = Vec::new();
    let (mut errors, mut unexpected) = (0u64, 0u64);
    let mut sizes: Vec<(usize, u64)> = Vec::new();
    let mut example = None;
    let mut calls = 0usize;
    let mut measured_start = None;
    loop {
        if calls == warmup {
            measured_start = Some(Instant::now());
        }
        if measured_start.is_some_and(|t| t.elapsed() >= duration) {
            break;
        }
        calls += 1;
        let t0 = Instant::now();
        let r = http.post(&url).json(&body).send().await;
        let (ok, n) = match r {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(b) => (
                    true,
                    serde_json::from_slice::<Value>(&b)
                        .ok()
                        .and_then(|v| v.as_array().map(Vec::len)),
                ),
                Err(_) => (false, None),
            },
            Ok(resp) => {
                let s = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if example.is_none() {
                    example = Some(format!(
                        "{s}: {}",
                        text.chars().take(300).collect::<String>()
                    ));
                }
                (false, None)
            }
            Err(e) => {
                if example.is_none() {
                    example = Some(error_chain(&e));
                }
                (false, None)
            }
        };
        let us = t0.elapsed().as_micros() as u64;
        if !ok {
            errors += 1;
            continue;
        }
        let n = n.unwrap_or(0);
        if expect.is_some_and(|e| e != n) {
            unexpected += 1;
        }
        match sizes.iter_mut().find(|(k, _)| *k == n) {
            Some((_, c)) => *c += 1,
            None => sizes.push((n, 1)),
        }
        if measured_start.is_some() {
            lat.push(us);
        }
    }
    let secs = measured_start
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    json!({
        "bench": "poll", "url": api, "pool": pool, "scheduled_before": before_iso,
        "calls": lat.len(), "calls_per_s": if secs > 0.0 { json!(round2(lat.len() as f64 / secs)) } else { Value::Null },
        "errors": errors, "unexpected_sizes": unexpected, "error_example": example,
        "runs_per_answer": sizes.iter().map(|(k, c)| json!([k, c])).collect::<Vec<_>>(),
        "latency_ms": percentiles(&mut lat),
        "loadgen_cpu_s": own_cpu_seconds(),
    })
}
