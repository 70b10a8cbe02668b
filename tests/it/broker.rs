//! Contract tests for `orrery::broker`: each contract is one async fn taking the role, run once
//! against the memory implementation and once against Redis when `ORRERY_TEST_REDIS_URL` is set
//! (skipped with a note otherwise). Each run uses a fresh random namespace and removes its keys.
//!
//! Owns only this file; must not depend on any other part of the crate than `orrery::broker`.

use std::future::Future;
use std::time::{Duration, Instant};

use orrery::broker::{BrokerConfig, BrokerError, Brokers, Cache, Message, Streams};

const NO_WAIT: Duration = Duration::ZERO;
const LONG_VIS: Duration = Duration::from_secs(60);

fn redis_url() -> Option<String> {
    std::env::var("ORRERY_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

fn namespace() -> String {
    format!("orrery-test-{}", uuid::Uuid::new_v4().simple())
}

/// Redis-backed brokers on a fresh namespace, or `None` (with a note) when no Redis is configured.
async fn redis_brokers(test: &str) -> Option<(Brokers, String, String)> {
    let Some(url) = redis_url() else {
        eprintln!("{test}: ORRERY_TEST_REDIS_URL unset, skipping the Redis variant");
        return None;
    };
    let ns = namespace();
    let cfg = BrokerConfig {
        cache_url: Some(url.clone()),
        work_url: Some(url.clone()),
        streams_url: Some(url.clone()),
        pool_size: 4,
        namespace: ns.clone(),
        stream_maxlen: 0,
    };
    let brokers = Brokers::connect(&cfg).await.expect("connect to test Redis");
    Some((brokers, url, ns))
}

/// Deletes every key of a test namespace.
async fn cleanup(url: &str, ns: &str) {
    use deadpool_redis::redis;
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("cleanup connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

/// Runs a Redis contract, removing its keys even when an assertion fails.
async fn run_then_cleanup(contract: impl Future<Output = ()>, url: &str, ns: &str) {
    use futures_util::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(contract).catch_unwind().await;
    cleanup(url, ns).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn with_cache<F, Fut>(test: &str, redis: bool, contract: F)
where
    F: FnOnce(Cache) -> Fut,
    Fut: Future<Output = ()>,
{
    if !redis {
        return contract(Cache::memory()).await;
    }
    if let Some((b, url, ns)) = redis_brokers(test).await {
        run_then_cleanup(contract(b.cache), &url, &ns).await;
    }
}

async fn with_streams<F, Fut>(test: &str, redis: bool, maxlen: Option<usize>, contract: F)
where
    F: FnOnce(Streams) -> Fut,
    Fut: Future<Output = ()>,
{
    let limit = |s: Streams| match maxlen {
        Some(n) => s.with_maxlen(n),
        None => s,
    };
    if !redis {
        return contract(limit(Streams::memory())).await;
    }
    if let Some((b, url, ns)) = redis_brokers(test).await {
        run_then_cleanup(contract(limit(b.work)), &url, &ns).await;
    }
}

/// One `#[tokio::test]` per implementation for a contract.
macro_rules! contract {
    ($name:ident, $with:ident $(, $maxlen:expr)?) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$with(stringify!($name), false, $($maxlen,)? super::$name).await;
            }
            #[tokio::test]
            async fn redis() {
                super::$with(stringify!($name), true, $($maxlen,)? super::$name).await;
            }
        }
    };
}

contract!(cache_set_get_delete, with_cache);
contract!(cache_ttl_expiry, with_cache);
contract!(streams_group_fanout_and_split, with_streams, None);
contract!(streams_group_start_position, with_streams, None);
contract!(streams_ack_prevents_redelivery, with_streams, None);
contract!(streams_redelivery_after_visibility, with_streams, None);
contract!(streams_dead_letter, with_streams, None);
contract!(streams_blocking_read_wakes, with_streams, None);
contract!(streams_missing_group, with_streams, None);
contract!(streams_group_skips_to_the_end, with_streams, None);
contract!(streams_trimmed_to_maxlen, with_streams, Some(10));
contract!(streams_trimmed_by_age, with_streams, None);

async fn cache_set_get_delete(cache: Cache) {
    assert_eq!(cache.get("k").await.unwrap(), None);
    let binary = vec![0u8, 255, 10, 13, 0xC3];
    cache.set("k", &binary, None).await.unwrap();
    cache.set("other", b"x", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(binary));
    cache.set("k", b"v2", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(cache.delete("k").await.unwrap());
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert!(!cache.delete("k").await.unwrap());
    assert_eq!(
        cache.get("other").await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

async fn cache_ttl_expiry(cache: Cache) {
    let ttl = Duration::from_millis(300);
    cache.set("short", b"s", Some(ttl)).await.unwrap();
    cache.set("forever", b"f", None).await.unwrap();
    cache
        .set("long", b"l", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(
        cache.get("short").await.unwrap().as_deref(),
        Some(&b"s"[..])
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(cache.get("short").await.unwrap(), None);
    assert!(!cache.delete("short").await.unwrap());
    assert_eq!(
        cache.get("forever").await.unwrap().as_deref(),
        Some(&b"f"[..])
    );
    assert_eq!(cache.get("long").await.unwrap().as_deref(), Some(&b"l"[..]));
    // Overwriting without a TTL makes the value permanent again.
    cache.set("short", b"s2", Some(ttl)).await.unwrap();
    cache.set("short", b"s3", None).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        cache.get("short").await.unwrap().as_deref(),
        Some(&b"s3"[..])
    );
}

fn payloads(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect()
}

fn ids(msgs: &[Message]) -> Vec<String> {
    msgs.iter().map(|m| m.id.clone()).collect()
}

async fn publish_n(s: &Streams, stream: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(s.publish(stream, format!("m{i}").as_bytes()).await.unwrap());
    }
    ids
}

async fn streams_group_fanout_and_split(s: Streams) {
    s.ensure_group("ev", "a").await.unwrap();
    s.ensure_group("ev", "b").await.unwrap();
    s.ensure_group("ev", "a").await.unwrap(); // idempotent
    let published = publish_n(&s, "ev", 6).await;
    assert_eq!(s.len("ev").await.unwrap(), 6);

    // Two consumers of one group split the messages.
    let c1 = s.read("ev", "a", "c1", 4, NO_WAIT, LONG_VIS).await.unwrap();
    let c2 = s
        .read("ev", "a", "c2", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&c1), ["m0", "m1", "m2", "m3"]);
    assert_eq!(payloads(&c2), ["m4", "m5"]);
    assert!(c1.iter().chain(&c2).all(|m| m.deliveries == 1));
    let mut all: Vec<String> = ids(&c1).into_iter().chain(ids(&c2)).collect();
    all.sort_by_key(|id| published.iter().position(|p| p == id));
    assert_eq!(all, published);
    let more = s
        .read("ev", "a", "c1", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert!(more.is_empty(), "group a is drained: {more:?}");
    assert_eq!(s.pending("ev", "a").await.unwrap(), 6);

    // Another group sees every message independently.
    let b = s
        .read("ev", "b", "c1", 100, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(ids(&b), published);
}

async fn streams_group_start_position(s: Streams) {
    publish_n(&s, "ev", 3).await;
    s.ensure_group("ev", "late").await.unwrap();
    s.ensure_group_from_start("ev", "early").await.unwrap();
    s.publish("ev", b"after").await.unwrap();
    let late = s
        .read("ev", "late", "c", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&late), ["after"]);
    let early = s
        .read("ev", "early", "c", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&early), ["m0", "m1", "m2", "after"]);
}

async fn streams_ack_prevents_redelivery(s: Streams) {
    let vis = Duration::from_millis(200);
    s.ensure_group("jobs", "g").await.unwrap();
    publish_n(&s, "jobs", 3).await;
    let got = s.read("jobs", "g", "c1", 10, NO_WAIT, vis).await.unwrap();
    assert_eq!(got.len(), 3);
    s.ack("jobs", "g", &[got[0].id.clone(), got[2].id.clone()])
        .await
        .unwrap();
    s.ack("jobs", "g", &[]).await.unwrap();
    assert_eq!(s.pending("jobs", "g").await.unwrap(), 1);
    tokio::time::sleep(vis + Duration::from_millis(150)).await;
    let again = s.read("jobs", "g", "c2", 10, NO_WAIT, vis).await.unwrap();
    assert_eq!(
        ids(&again),
        [got[1].id.clone()],
        "only the unacked one returns"
    );
    assert_eq!(again[0].deliveries, 2);
    s.ack("jobs", "g", &ids(&again)).await.unwrap();
    assert_eq!(s.pending("jobs", "g").await.unwrap(), 0);
    tokio::time::sleep(vis + Duration::from_millis(150)).await;
    let none = s.read("jobs", "g", "c2", 10, NO_WAIT, vis).await.unwrap();
    assert!(none.is_empty(), "acked messages came back: {none:?}");
}

async fn streams_redelivery_after_visibility(s: Streams) {
    let vis = Duration::from_millis(250);
    s.ensure_group("jobs", "g").await.unwrap();
    let id = s.publish("jobs", b"work").await.unwrap();
    let first = s.read("jobs", "g", "c1", 1, NO_WAIT, vis).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].id.as_str(), first[0].deliveries),
        (id.as_str(), 1)
    );
    // Still invisible to everyone before the timeout.
    let early = s.read("jobs", "g", "c2", 1, NO_WAIT, vis).await.unwrap();
    assert!(early.is_empty(), "redelivered too early: {early:?}");
    tokio::time::sleep(vis + Duration::from_millis(150)).await;
    let second = s.read("jobs", "g", "c2", 1, NO_WAIT, vis).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, id);
    assert_eq!(second[0].payload, b"work");
    assert_eq!(second[0].deliveries, 2);
    // Claiming restarts the clock.
    let right_after = s.read("jobs", "g", "c1", 1, NO_WAIT, vis).await.unwrap();
    assert!(right_after.is_empty(), "claimed twice: {right_after:?}");
    tokio::time::sleep(vis + Duration::from_millis(150)).await;
    let third = s.read("jobs", "g", "c1", 1, NO_WAIT, vis).await.unwrap();
    assert_eq!(
        (third[0].id.as_str(), third[0].deliveries),
        (id.as_str(), 3)
    );
}

async fn streams_dead_letter(s: Streams) {
    let vis = Duration::from_millis(150);
    s.ensure_group("jobs", "g").await.unwrap();
    s.publish("jobs", b"poison").await.unwrap();
    s.publish("jobs", b"fine").await.unwrap();
    let got = s.read("jobs", "g", "c", 1, NO_WAIT, vis).await.unwrap();
    assert_eq!(payloads(&got), ["poison"]);
    assert_eq!(s.len("jobs:dead").await.unwrap(), 0);
    s.dead_letter("jobs", "g", &got[0]).await.unwrap();
    assert_eq!(s.len("jobs:dead").await.unwrap(), 1);
    assert_eq!(s.pending("jobs", "g").await.unwrap(), 0);
    tokio::time::sleep(vis + Duration::from_millis(150)).await;
    let next = s.read("jobs", "g", "c", 10, NO_WAIT, vis).await.unwrap();
    assert_eq!(payloads(&next), ["fine"], "dead-lettered message came back");
    s.ensure_group_from_start("jobs:dead", "inspect")
        .await
        .unwrap();
    let dead = s
        .read("jobs:dead", "inspect", "c", 10, NO_WAIT, vis)
        .await
        .unwrap();
    assert_eq!(payloads(&dead), ["poison"]);
}

async fn streams_blocking_read_wakes(s: Streams) {
    s.ensure_group("ev", "g").await.unwrap();
    // Nothing arrives: returns empty after about `block`.
    let t = Instant::now();
    let none = s
        .read("ev", "g", "c", 10, Duration::from_millis(200), LONG_VIS)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    // A publish mid-wait wakes the reader well before the block ends.
    let publisher = s.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        publisher.publish("ev", b"late").await.unwrap()
    });
    let t = Instant::now();
    let got = s
        .read("ev", "g", "c", 10, Duration::from_secs(5), LONG_VIS)
        .await
        .unwrap();
    let waited = t.elapsed();
    let id = task.await.unwrap();
    assert_eq!(ids(&got), [id]);
    assert_eq!(payloads(&got), ["late"]);
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

/// A group moved to the end gets only what is published after (what it was given stays
/// pending); the other groups keep their place.
async fn streams_group_skips_to_the_end(s: Streams) {
    s.ensure_group_from_start("ev", "idle").await.unwrap();
    s.ensure_group_from_start("ev", "other").await.unwrap();
    publish_n(&s, "ev", 3).await;
    let got = s
        .read("ev", "idle", "c", 1, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["m0"]);
    s.skip_to_end("ev", "idle").await.unwrap();
    assert_eq!(s.pending("ev", "idle").await.unwrap(), 1, "m0 was given");
    s.ack("ev", "idle", &ids(&got)).await.unwrap();
    s.publish("ev", b"after").await.unwrap();
    let got = s
        .read("ev", "idle", "c", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&got), ["after"]);
    let other = s
        .read("ev", "other", "c", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&other), ["m0", "m1", "m2", "after"]);
    let err = s.skip_to_end("ev", "missing").await.unwrap_err();
    assert!(matches!(err, BrokerError::NoGroup { .. }), "{err}");
}

async fn streams_missing_group(s: Streams) {
    let err = s
        .read("nowhere", "g", "c", 1, Duration::from_millis(50), LONG_VIS)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::NoGroup { .. }), "{err}");
    s.publish("exists", b"x").await.unwrap();
    let err = s
        .read("exists", "g", "c", 1, NO_WAIT, LONG_VIS)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::NoGroup { .. }), "{err}");
    assert_eq!(s.len("nowhere").await.unwrap(), 0);
}

async fn streams_trimmed_to_maxlen(s: Streams) {
    assert_eq!(s.maxlen(), 10);
    s.ensure_group_from_start("ev", "g").await.unwrap();
    publish_n(&s, "ev", 40).await;
    assert_eq!(s.len("ev").await.unwrap(), 10);
    let got = s
        .read("ev", "g", "c", 100, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    let expected: Vec<String> = (30..40).map(|i| format!("m{i}")).collect();
    assert_eq!(payloads(&got), expected, "only the newest survive");
}

/// Entries older than the age are dropped whether read or not; younger ones stay.
async fn streams_trimmed_by_age(s: Streams) {
    s.ensure_group_from_start("ev", "g").await.unwrap();
    publish_n(&s, "ev", 5).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = s.publish("ev", b"fresh").await.unwrap();
    assert_eq!(
        s.trim_older("ev", Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(s.len("ev").await.unwrap(), 6);
    assert_eq!(s.trim_older("ev", Duration::from_secs(1)).await.unwrap(), 5);
    let got = s
        .read("ev", "g", "c", 100, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&got), vec!["fresh".to_string()]);
    assert_eq!(got[0].id, fresh);
    assert_eq!(
        s.trim_older("nowhere", Duration::from_secs(1))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn connect_failure_names_role_and_hides_password() {
    let cfg = BrokerConfig {
        cache_url: None,
        work_url: Some("redis://:hunter2secret@127.0.0.1:1/3".into()),
        streams_url: None,
        pool_size: 2,
        namespace: namespace(),
        stream_maxlen: 0,
    };
    let err = Brokers::connect(&cfg)
        .await
        .expect_err("port 1 must refuse");
    let shown = err.to_string();
    let debug = format!("{err:?}");
    assert!(
        matches!(err, BrokerError::Connect { role: "work", .. }),
        "{debug}"
    );
    assert!(shown.contains("work"), "{shown}");
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    for text in [&shown, &debug, &format!("{cfg:?}")] {
        assert!(!text.contains("hunter2secret"), "password leaked: {text}");
    }

    let bad = BrokerConfig {
        cache_url: Some("redis://user:hunter2secret@[not a host".into()),
        ..cfg.clone()
    };
    let err = Brokers::open(&bad).expect_err("malformed URL");
    assert!(err.to_string().contains("cache"), "{err}");
    assert!(
        !format!("{err} {err:?}").contains("hunter2secret"),
        "{err:?}"
    );
}

#[test]
fn describe_and_redaction_never_show_passwords() {
    assert_eq!(
        orrery::broker::redact_url("redis://:secret@h:6379/1"),
        "redis://:***@h:6379/1"
    );
    assert_eq!(
        orrery::broker::redact_url("redis://u:secret@h/0?password=other&x=1"),
        "redis://u:***@h/0?password=***&x=1"
    );
    let cfg = BrokerConfig {
        cache_url: None,
        work_url: Some("redis://:secret@10.1.2.3:6390/2".into()),
        streams_url: Some("redis://:secret@10.1.2.3:6390/2".into()),
        pool_size: 2,
        namespace: "orrery".into(),
        stream_maxlen: 0,
    };
    let b = Brokers::open(&cfg).expect("open is lazy");
    let described = b.describe();
    assert_eq!(
        described,
        [
            ("cache", "memory".to_string()),
            ("work", "redis 10.1.2.3:6390/2".to_string()),
            ("streams", "redis 10.1.2.3:6390/2".to_string()),
        ]
    );
    assert!(b.is_memory());
    assert!(!format!("{b:?} {cfg:?}").contains("secret"));
    assert!(Brokers::memory().is_memory());
    assert!(Brokers::memory()
        .describe()
        .iter()
        .all(|(_, d)| d == "memory"));
}

#[tokio::test]
async fn redis_brokers_ping_and_describe() {
    let Some((b, url, ns)) = redis_brokers("redis_brokers_ping_and_describe").await else {
        return;
    };
    b.ping().await.unwrap();
    assert!(!b.is_memory());
    for (role, d) in b.describe() {
        assert!(
            d.starts_with("redis ") || d.starts_with("rediss "),
            "{role}: {d}"
        );
    }
    // Roles on one URL share one pool, and keys stay inside the namespace.
    b.cache.set("k", b"v", None).await.unwrap();
    b.streams.publish("ev", b"x").await.unwrap();
    assert_eq!(
        b.work.len("ev").await.unwrap(),
        1,
        "work and streams share a namespace"
    );
    cleanup(&url, &ns).await;
}

/// In one process nobody else can read an entry every group has acknowledged, so the memory
/// streams drop it: memory follows the consumers' backlog, not `maxlen`.
#[tokio::test]
async fn memory_streams_drop_acknowledged_entries() {
    let s = Streams::memory();
    s.ensure_group("ev", "fast").await.unwrap();
    s.ensure_group("ev", "slow").await.unwrap();
    publish_n(&s, "ev", 5).await;
    let fast = s
        .read("ev", "fast", "c", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    s.ack("ev", "fast", &ids(&fast)).await.unwrap();
    assert_eq!(
        s.len("ev").await.unwrap(),
        5,
        "the slow group still needs them"
    );
    let slow = s
        .read("ev", "slow", "c", 3, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    // Acknowledge the second and third only: the first is still pending, so nothing goes.
    s.ack("ev", "slow", &ids(&slow)[1..]).await.unwrap();
    assert_eq!(s.len("ev").await.unwrap(), 5);
    s.ack("ev", "slow", &ids(&slow)[..1]).await.unwrap();
    assert_eq!(
        s.len("ev").await.unwrap(),
        2,
        "entries 4 and 5 are not delivered yet"
    );
    let rest = s
        .read("ev", "slow", "c", 10, NO_WAIT, LONG_VIS)
        .await
        .unwrap();
    assert_eq!(payloads(&rest), vec!["m3", "m4"]);
    s.ack("ev", "slow", &ids(&rest)).await.unwrap();
    assert_eq!(s.len("ev").await.unwrap(), 0);
}
