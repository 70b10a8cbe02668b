//! Concurrency leases (v2 limits): take, renew and release slots, and many concurrent holders
//! never exceeding the limit.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{call, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_leases_take_renew_and_release_slots() {
    let app = TestApp::start().await;
    let (s, l) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/",
        Some(json!({"name": "db", "limit": 1})),
    )
    .await;
    assert_eq!((s, &l["active_slots"]), (201, &json!(0)));
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/v2/concurrency_limits/",
            Some(json!({"name": "db", "limit": 1}))
        )
        .await
        .0,
        409
    );
    let take = json!({"names": ["db"], "slots": 1, "mode": "concurrency", "lease_duration": 60});
    let (s, granted) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/increment-with-lease",
        Some(take.clone()),
    )
    .await;
    assert_eq!((s, &granted["limits"][0]["name"]), (200, &json!("db")));
    let r = app
        .client
        .post(app.url("/api/v2/concurrency_limits/increment-with-lease"))
        .json(&take)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status().as_u16(), 423);
    assert!(r.headers().get("retry-after").is_some());
    let lease = granted["lease_id"].as_str().expect("lease");
    let renew = format!("/api/v2/concurrency_limits/leases/{lease}/renew");
    assert_eq!(
        call(&app, "POST", &renew, Some(json!({"lease_duration": 60})))
            .await
            .0,
        204
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/db", None)
            .await
            .1["active_slots"],
        1
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/v2/concurrency_limits/decrement-with-lease",
            Some(json!({"lease_id": lease}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/db", None)
            .await
            .1["active_slots"],
        0
    );
    assert_eq!(
        call(&app, "POST", &renew, Some(json!({"lease_duration": 60}))).await,
        (410, json!({"detail": "Lease not found."}))
    );
    let (s, empty) = call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/increment-with-lease",
        Some(json!({"names": ["tag:none"], "slots": 1})),
    )
    .await;
    assert_eq!(
        (s, &empty["limits"]),
        (200, &json!([])),
        "no matching limit still grants a lease"
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/nope", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&app, "DELETE", "/api/v2/concurrency_limits/db", None)
            .await
            .0,
        204
    );
    app.stop().await;
}

/// Many clients on PostgreSQL (or the SQLite writer) never overfill a limit or lose a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lease_holders_never_exceed_the_limit() {
    let app = TestApp::start().await;
    call(
        &app,
        "POST",
        "/api/v2/concurrency_limits/",
        Some(json!({"name": "pool", "limit": 3})),
    )
    .await;
    let holders = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let base = app.base.clone();
        let (holders, peak) = (holders.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 5 {
                let r = client
                    .post(format!(
                        "{base}/api/v2/concurrency_limits/increment-with-lease"
                    ))
                    .json(&json!({"names": ["pool"], "slots": 1, "lease_duration": 60}))
                    .send()
                    .await
                    .expect("req");
                if r.status().as_u16() == 423 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                assert_eq!(r.status().as_u16(), 200);
                let lease = r.json::<Value>().await.expect("json")["lease_id"]
                    .as_str()
                    .expect("lease")
                    .to_string();
                let now = holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let r = client
                    .post(format!(
                        "{base}/api/v2/concurrency_limits/decrement-with-lease"
                    ))
                    .json(&json!({"lease_id": lease}))
                    .send()
                    .await
                    .expect("req");
                assert_eq!(r.status().as_u16(), 204);
                done += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    assert!(
        peak.load(std::sync::atomic::Ordering::SeqCst) <= 3,
        "more holders than the limit"
    );
    assert_eq!(
        call(&app, "GET", "/api/v2/concurrency_limits/pool", None)
            .await
            .1["active_slots"],
        0,
        "no slot lost or leaked"
    );
    app.stop().await;
}
