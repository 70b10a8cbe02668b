//! Reading events back: `/events/filter` pages with totals and signed next-page links, every
//! part of the `EventFilter`, `/events/count-by/{countable}`, bad input, and retention.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::support::{call, wait_for, TestApp};

const FLOW: &str = "prefect.flow.7a1d9c1e-0000-4000-8000-000000000001";

/// 60 `test.a.one` events of resource `test.r.1` (named "first") and 60 `test.b.two` events of
/// `test.r.2` related to a flow, two minutes apart going back from `now`, alternating.
fn events(now: DateTime<Utc>) -> Vec<Value> {
    (0..120)
        .map(|i| {
            let a = i % 2 == 0;
            json!({
                "id": uuid::Uuid::new_v4(),
                "occurred": (now - Duration::minutes(2 * i)).to_rfc3339(),
                "event": if a { "test.a.one" } else { "test.b.two" },
                "resource": if a {
                    json!({"prefect.resource.id": "test.r.1", "prefect.resource.name": "first"})
                } else {
                    json!({"prefect.resource.id": "test.r.2", "prefect.resource.name": "second"})
                },
                "related": if a { json!([]) } else {
                    json!([{"prefect.resource.id": FLOW, "prefect.resource.role": "flow", "prefect.resource.name": "my-flow"}])
                },
                "payload": {"n": i},
            })
        })
        .collect()
}

async fn filter(app: &TestApp, filter: Value) -> (u16, Value) {
    call(
        app,
        "POST",
        "/api/events/filter",
        Some(json!({"filter": filter})),
    )
    .await
}

async fn total(app: &TestApp, f: Value) -> i64 {
    let (s, b) = filter(app, f).await;
    assert_eq!(s, 200, "{b}");
    b["total"].as_i64().expect("total")
}

/// A path and query of an absolute link.
fn path_of(link: &str) -> String {
    let rest = link.split_once("://").map_or(link, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_queried_paged_and_counted() {
    let app = TestApp::start().await;
    let now = Utc::now();
    let (s, _) = call(&app, "POST", "/api/events", Some(Value::Array(events(now)))).await;
    assert_eq!(s, 204);
    let mine = json!({"event": {"prefix": ["test."]}});
    wait_for(
        "the persister",
        20,
        || async { total(&app, mine.clone()).await },
        |n| *n == 120,
    )
    .await;

    // Pages of 50, newest first, each link the next one, 120 distinct events in all.
    let (s, page) = call(
        &app,
        "POST",
        "/api/events/filter",
        Some(json!({"filter": mine, "limit": 50})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(page["total"], 120);
    let mut seen: Vec<Value> = page["events"].as_array().expect("events").clone();
    assert_eq!(seen.len(), 50);
    let mut next = page["next_page"].as_str().map(str::to_string);
    let first_link = next.clone().expect("a next page");
    assert!(first_link.starts_with("http://"), "{first_link}");
    assert!(first_link.contains("/api/events/filter/next?page-token="));
    while let Some(link) = next {
        let (s, p) = call(&app, "GET", &path_of(&link), None).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["total"], 120);
        seen.extend(p["events"].as_array().expect("events").iter().cloned());
        next = p["next_page"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 120);
    let times: Vec<DateTime<Utc>> = seen
        .iter()
        .map(|e| {
            e["occurred"]
                .as_str()
                .expect("occurred")
                .parse()
                .expect("time")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let mut ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().expect("id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120);
    assert!(seen[0]["received"].is_string());
    assert_eq!(seen[0]["payload"]["n"], 0);

    // Oldest first.
    let (_, asc) = filter(
        &app,
        json!({"event": {"prefix": ["test."]}, "order": "ASC"}),
    )
    .await;
    assert_eq!(asc["events"][0]["payload"]["n"], 119);

    // Every part of the filter.
    let cases = [
        (json!({"event": {"prefix": ["test.a"]}}), 60),
        (
            json!({"event": {"prefix": ["test."], "exclude_prefix": ["test.a"]}}),
            60,
        ),
        (json!({"event": {"name": ["test.b.two"]}}), 60),
        (
            json!({"event": {"prefix": ["test."], "exclude_name": ["test.b.two"]}}),
            60,
        ),
        (json!({"resource": {"id": ["test.r.1"]}}), 60),
        (json!({"resource": {"id_prefix": ["test.r."]}}), 120),
        (
            json!({"resource": {"labels": {"prefect.resource.name": "fir*"}}}),
            60,
        ),
        (
            json!({"resource": {"labels": {"prefect.resource.name": ["!fir*"]}, "id_prefix": ["test.r"]}}),
            60,
        ),
        (
            json!({"resource": {"labels": {"prefect.resource.id": "test.r.?"}}}),
            120,
        ),
        (json!({"related": {"role": ["flow"]}}), 60),
        (json!({"related": {"id": [FLOW]}}), 60),
        (
            json!({"related": {"resources_in_roles": [[FLOW, "flow"]]}}),
            60,
        ),
        (
            json!({"related": {"resources_in_roles": [[FLOW, "deployment"]]}}),
            0,
        ),
        (
            json!({"related": {"labels": {"prefect.resource.name": "my-*"}}}),
            60,
        ),
        (json!({"any_resource": {"id": [FLOW]}}), 60),
        (json!({"any_resource": {"id": ["test.r.1"]}}), 60),
        (
            json!({"any_resource": [{"id_prefix": ["test.r."]}, {"id": [FLOW]}]}),
            60,
        ),
        (
            json!({"resource": {"id_prefix": ["test.r."], "distinct": true}}),
            2,
        ),
        (
            json!({"event": {"prefix": ["test."]}, "text": {"query": "one"}}),
            60,
        ),
        (
            json!({"event": {"prefix": ["test."]}, "text": {"query": "-one"}}),
            60,
        ),
        (
            json!({"event": {"prefix": ["test."]}, "text": {"query": "\"my-flow\""}}),
            60,
        ),
        (
            json!({"event": {"prefix": ["test."]}, "occurred": {"since": (now - Duration::minutes(9)).to_rfc3339()}}),
            5,
        ),
        (
            json!({"event": {"prefix": ["test."]}, "occurred": {"until": (now - Duration::minutes(200)).to_rfc3339()}}),
            20,
        ),
        (json!({"id": {"id": [seen[3]["id"], seen[4]["id"]]}}), 2),
    ];
    for (f, want) in cases {
        assert_eq!(total(&app, f.clone()).await, want, "{f}");
    }
    let (_, distinct) = filter(
        &app,
        json!({"resource": {"id_prefix": ["test.r."], "distinct": true}}),
    )
    .await;
    let newest: Vec<i64> = distinct["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["payload"]["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(newest, vec![0, 1], "each resource's newest event");

    // Counts.
    let count = async |by: &str, body: Value| {
        call(
            &app,
            "POST",
            &format!("/api/events/count-by/{by}"),
            Some(body),
        )
        .await
    };
    let (s, by_event) = count("event", json!({"filter": mine})).await;
    assert_eq!(s, 200, "{by_event}");
    let pairs: Vec<(Value, Value)> = by_event
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| (c["value"].clone(), c["count"].clone()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (json!("test.a.one"), json!(60)),
            (json!("test.b.two"), json!(60))
        ]
    );
    let (_, by_resource) = count("resource", json!({"filter": mine})).await;
    assert_eq!(by_resource[0]["label"], "first");
    assert_eq!(by_resource[1]["label"], "second");
    let window = json!({
        "event": {"prefix": ["test."]},
        "occurred": {"since": (now - Duration::hours(5)).to_rfc3339(), "until": now.to_rfc3339()}
    });
    let (s, by_hour) = count(
        "time",
        json!({"filter": window, "time_unit": "hour", "time_interval": 1}),
    )
    .await;
    assert_eq!(s, 200, "{by_hour}");
    let buckets = by_hour.as_array().expect("buckets");
    assert!((5..=7).contains(&buckets.len()), "{by_hour}");
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["count"].as_i64().expect("count"))
            .sum::<i64>(),
        120
    );
    assert_eq!(buckets[0]["value"], "0");
    let (_, by_10_min) = count(
        "time",
        json!({"filter": window, "time_unit": "minute", "time_interval": 10}),
    )
    .await;
    let small = by_10_min.as_array().expect("buckets");
    assert!((30..=32).contains(&small.len()), "{}", small.len());
    assert_eq!(
        small
            .iter()
            .map(|b| b["count"].as_i64().expect("count"))
            .sum::<i64>(),
        120
    );
    assert!(small.iter().all(|b| b["count"].as_i64() <= Some(5)));
    let (_, by_day) = count("day", json!({"filter": mine})).await;
    assert_eq!(by_day.as_array().expect("days").len(), 181);
    assert_eq!(
        by_day
            .as_array()
            .expect("days")
            .iter()
            .map(|b| b["count"].as_i64().expect("count"))
            .sum::<i64>(),
        120
    );

    // Bad input.
    let (s, b) = call(
        &app,
        "POST",
        "/api/events/filter",
        Some(json!({"limit": 51})),
    )
    .await;
    assert_eq!(
        (s, &b["exception_detail"][0]["loc"]),
        (422, &json!(["body", "limit"])),
        "{b}"
    );
    let (s, _) = call(
        &app,
        "POST",
        "/api/events/filter",
        Some(json!({"limit": -1})),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _) = count("nope", json!({"filter": {}})).await;
    assert_eq!(s, 422);
    let (s, b) = count("time", json!({"filter": {}, "time_unit": "hour"})).await;
    assert_eq!(s, 422, "{b}");
    assert!(b["detail"].as_str().expect("detail").contains("buckets"));
    let (s, _) = count("time", json!({"filter": {}, "time_interval": 0.001})).await;
    assert_eq!(s, 422);
    let (s, _) = count("event", json!({})).await;
    assert_eq!(s, 422);
    let (s, _) = filter(&app, json!({"text": {"query": "x".repeat(201)}})).await;
    assert_eq!(s, 422);

    // A token can't be altered, and is only good where it was made.
    let path = path_of(&first_link);
    let tampered = format!("{}x", path);
    let (s, b) = call(&app, "GET", &tampered, None).await;
    assert_eq!((s, b), (403, json!({"detail": "Forbidden"})));
    let (s, _) = call(
        &app,
        "GET",
        "/api/events/filter/next?page-token=garbage",
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(&app, "GET", "/api/events/filter/next", None).await;
    assert_eq!(s, 422);
    let (s, ws) = call(
        &app,
        "POST",
        &format!(
            "/api/accounts/{}/workspaces/",
            orrery::storage::accounts::DEFAULT_ACCOUNT_ID
        ),
        Some(json!({"name": "Other", "handle": "other"})),
    )
    .await;
    assert_eq!(s, 201, "{ws}");
    let other = format!(
        "/api/accounts/{}/workspaces/{}",
        orrery::storage::accounts::DEFAULT_ACCOUNT_ID,
        ws["id"].as_str().expect("id")
    );
    let (s, b) = call(
        &app,
        "POST",
        &format!("{other}/events/filter"),
        Some(json!({})),
    )
    .await;
    assert_eq!((s, &b["total"]), (200, &json!(0)), "{b}");
    let token = path.split_once('?').expect("query").1;
    let (s, _) = call(
        &app,
        "GET",
        &format!("{other}/events/filter/next?{token}"),
        None,
    )
    .await;
    assert_eq!(s, 403, "another workspace's token");
    // Workspace URLs link to their own next pages.
    let (s, _) = call(
        &app,
        "POST",
        &format!("{other}/events"),
        Some(Value::Array(events(now))),
    )
    .await;
    assert_eq!(s, 204);
    let b = wait_for(
        "the other workspace's events",
        20,
        || async {
            call(
                &app,
                "POST",
                &format!("{other}/events/filter"),
                Some(json!({})),
            )
            .await
            .1
        },
        |b| b["total"] == 120,
    )
    .await;
    assert!(b["next_page"]
        .as_str()
        .expect("next")
        .contains(&format!("{other}/events/filter/next?")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_retention_period_are_deleted_with_their_counts() {
    let app = TestApp::builder()
        .setting("ORRERY__EVENTS__RETENTION_DAYS", "1")
        .setting("ORRERY__EVENTS__RETENTION_INTERVAL_MS", "200")
        .start()
        .await;
    let now = Utc::now();
    let mut batch = events(now - Duration::days(3));
    batch.truncate(10);
    batch.extend(events(now).into_iter().take(4));
    let (s, _) = call(&app, "POST", "/api/events", Some(Value::Array(batch))).await;
    assert_eq!(s, 204);
    let all = json!({"event": {"prefix": ["test."]}});
    wait_for(
        "retention",
        30,
        || async {
            (
                total(&app, all.clone()).await,
                filter(&app, all.clone()).await.1,
            )
        },
        |(n, page)| *n == 4 && page["events"].as_array().map_or(0, Vec::len) == 4,
    )
    .await;
    let (_, counts) = call(
        &app,
        "POST",
        "/api/events/count-by/event",
        Some(json!({"filter": all})),
    )
    .await;
    let sum: i64 = counts
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| c["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(sum, 4, "{counts}");
    app.stop().await;
}
