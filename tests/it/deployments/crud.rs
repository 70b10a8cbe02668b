//! Deployments themselves: upsert, read, filter, count, paginate, update and delete; bad input
//! and out-of-range numbers; the defaults the reference server fills in.

use serde_json::{json, Value};

use super::{at, auto_scheduled, param_schema, parse_ts, runs_of};
use crate::support::{
    call, create_flow, detail, err_loc, err_type, names, raw, DeploymentBuilder, TestApp,
    WorkPoolBuilder,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_upsert_read_filter_update_delete() {
    let app = TestApp::start().await;
    let p = WorkPoolBuilder::new("p").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let body = json!({
        "name": "d1", "flow_id": flow_id, "work_pool_name": "p", "parameters": {"n": 1},
        "parameter_openapi_schema": param_schema(), "enforce_parameter_schema": true,
        "schedules": [{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}, "active": true}],
        "tags": ["t1"], "path": ".", "entrypoint": "flow.py:etl", "job_variables": {},
        "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/tmp"}}],
        "version_info": {"type": "prefect:simple", "version": "1"},
    });
    let (s, d) = call(&app, "POST", "/api/deployments/", Some(body.clone())).await;
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().expect("id").to_string();
    assert_eq!(d["name"], "d1");
    assert_eq!(d["flow_id"], flow_id);
    assert_eq!(d["work_pool_name"], "p");
    assert_eq!(d["work_queue_name"], "default", "the pool's default queue");
    assert_eq!(d["work_queue_id"], p["default_queue_id"]);
    assert_eq!(d["status"], "NOT_READY");
    assert_eq!(d["paused"], false);
    assert_eq!(d["parameters"], json!({"n": 1}));
    assert_eq!(d["labels"], json!({"prefect.flow.id": flow_id}));
    assert_eq!(d["pull_steps"], body["pull_steps"]);
    assert_eq!(d["last_polled"], Value::Null);
    let schedules = d["schedules"].as_array().expect("schedules");
    assert_eq!(schedules.len(), 1);
    assert!(schedules[0]["id"].is_string());
    assert_eq!(schedules[0]["deployment_id"], json!(id));
    assert_eq!(schedules[0]["schedule"]["interval"], 3600.0);
    assert_eq!(schedules[0]["schedule"]["timezone"], "UTC");
    assert_eq!(
        parse_ts(&schedules[0]["schedule"]["anchor_date"]),
        parse_ts(&json!("2026-01-01T00:00:00Z"))
    );
    assert_eq!(schedules[0]["active"], true);
    assert_eq!(schedules[0]["max_scheduled_runs"], Value::Null);
    assert_eq!(schedules[0]["parameters"], json!({}));
    assert_eq!(schedules[0]["slug"], Value::Null);

    // Same flow + name: 200 with the same id (upsert); the schedules are replaced.
    let mut again = body.clone();
    again["description"] = json!("again");
    again["schedules"] =
        json!([{"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}, "slug": "morning"}]);
    let (s, d2) = call(&app, "POST", "/api/deployments/", Some(again)).await;
    assert_eq!(s, 200, "{d2}");
    assert_eq!(d2["id"], json!(id));
    assert_eq!(d2["description"], "again");
    assert_eq!(d2["schedules"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        d2["schedules"][0]["schedule"],
        json!({"cron": "0 9 * * *", "timezone": "Europe/Paris", "day_or": true})
    );
    assert_eq!(d2["schedules"][0]["slug"], "morning");

    // Reads.
    let (s, r) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!((s, &r["id"]), (200, &json!(id)));
    let (s, r) = call(&app, "GET", "/api/deployments/name/etl/d1", None).await;
    assert_eq!((s, &r["id"]), (200, &json!(id)));

    for path in [
        "/api/deployments/name/etl/nope",
        "/api/deployments/name/nope/d1",
        "/api/deployments/not-a-uuid",
    ] {
        assert_eq!(call(&app, "GET", path, None).await.0, 404, "{path}");
    }

    // A deployment without a pool; another naming a queue the pool lacks (the queue is created).
    let bare = DeploymentBuilder::new("bare")
        .flow_id(&flow_id)
        .create(&app)
        .await;
    assert_eq!(
        (
            &bare["work_pool_name"],
            &bare["work_queue_name"],
            &bare["work_queue_id"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let newq = DeploymentBuilder::new("d3")
        .flow_id(&flow_id)
        .pool("p")
        .queue("newq")
        .create(&app)
        .await;
    assert_eq!(newq["work_queue_name"], "newq");
    let (s, q) = call(&app, "GET", "/api/work_pools/p/queues/newq", None).await;
    assert_eq!((s, &q["id"]), (200, &newq["work_queue_id"]));

    // Filter, count, paginate.
    let (s, list) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"deployments": {"name": {"any_": ["d1"]}}})),
    )
    .await;
    assert_eq!((s, names(&list)), (200, vec!["d1".to_string()]));
    let (s, list) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"work_pools": {"name": {"any_": ["p"]}}, "sort": "NAME_ASC"})),
    )
    .await;
    assert_eq!(
        (s, names(&list)),
        (200, vec!["d1".to_string(), "d3".to_string()])
    );
    let (s, n) = call(
        &app,
        "POST",
        "/api/deployments/count",
        Some(json!({"flows": {"name": {"any_": ["etl"]}}})),
    )
    .await;
    assert_eq!((s, n), (200, json!(3)));
    let (s, page) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"limit": 1, "sort": "NAME_ASC"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            &page["count"],
            &page["pages"],
            &page["page"],
            &page["limit"]
        ),
        (&json!(3), &json!(3), &json!(1), &json!(1))
    );
    assert_eq!(names(&page["results"]), ["bare"]);
    let (s, page) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"limit": 1, "page": 2, "sort": "NAME_ASC", "flows": {"name": {"any_": ["etl"]}}})),
    )
    .await;
    assert_eq!(
        (s, &page["count"], &page["page"]),
        (200, &json!(3), &json!(2))
    );
    assert_eq!(names(&page["results"]), ["d1"]);
    let (s, list) = call(
        &app,
        "POST",
        "/api/deployments/filter",
        Some(json!({"sort": "NAME_DESC", "offset": 1})),
    )
    .await;
    assert_eq!(
        (s, names(&list)),
        (200, vec!["d1".to_string(), "bare".to_string()])
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/deployments/filter",
            Some(json!({"limit": 201}))
        )
        .await,
        (
            422,
            detail("Invalid limit: must be less than or equal to 200.")
        )
    );

    // PATCH.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"description": "patched", "tags": ["t2"], "parameters": {"n": 2}})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, r) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(
        (&r["description"], &r["tags"], &r["parameters"]),
        (&json!("patched"), &json!(["t2"]), &json!({"n": 2}))
    );
    assert_eq!(
        r["schedules"].as_array().map(Vec::len),
        Some(1),
        "a PATCH without schedules keeps them"
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("/api/deployments/{}", uuid::Uuid::new_v4()),
            Some(json!({"description": "x"}))
        )
        .await,
        (404, detail("Deployment not found."))
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "name"]), json!("extra_forbidden"))
    );

    // Deleting the pool detaches its deployments.
    let (s, _) = call(&app, "DELETE", "/api/work_pools/p", None).await;
    assert_eq!(s, 204);
    let (_, r) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(
        (
            &r["work_pool_name"],
            &r["work_queue_name"],
            &r["work_queue_id"]
        ),
        (&Value::Null, &Value::Null, &Value::Null),
        "{r}"
    );

    let (s, _) = call(&app, "DELETE", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(s, 204);
    // The reference's wording (no full stop on these routes, one on PATCH and the schedules).
    let nf = || (404, detail("Deployment not found"));
    assert_eq!(
        call(&app, "GET", "/api/deployments/name/etl/nope", None).await,
        nf()
    );
    assert_eq!(
        call(&app, "GET", "/api/deployments/name/nope/d1", None).await,
        nf()
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/deployments/{}", uuid::Uuid::new_v4()),
            None
        )
        .await,
        nf()
    );
    assert_eq!(
        call(&app, "GET", "/api/deployments/not-a-uuid", None).await,
        (404, detail("Not Found"))
    );
    assert_eq!(
        call(&app, "DELETE", &format!("/api/deployments/{id}"), None).await,
        nf()
    );
    assert_eq!(
        call(&app, "GET", &format!("/api/deployments/{id}"), None).await,
        nf()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_create_rejects_bad_input_like_prefect() {
    let app = TestApp::start().await;
    WorkPoolBuilder::new("p").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let with = |extra: Value| {
        let mut b = json!({"name": "d", "flow_id": flow_id});
        if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
            b.extend(e);
        }
        b
    };
    assert_eq!(
        call(
            &app,
            "POST",
            "/api/deployments/",
            Some(with(json!({"work_pool_name": "nope"})))
        )
        .await,
        (404, detail("Work pool \"nope\" not found."))
    );
    assert_eq!(
        call(&app, "POST", "/api/deployments/", Some(with(json!({"flow_id": uuid::Uuid::new_v4()})))).await,
        (
            409,
            detail("Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.")
        )
    );
    let bad_schedules = [
        json!({"cron": "not a cron"}),
        json!({"cron": "61 * * * *"}),
        json!({"cron": "0 8 * *"}),
        json!({"interval": 0}),
        json!({"interval": -5}),
        json!({"cron": "* * * * *", "timezone": "Mars/Olympus"}),
        json!({"rrule": "FREQ=SOMETIMES"}),
        json!({"every": 5}),
    ];
    for sched in bad_schedules {
        let (s, e) = call(
            &app,
            "POST",
            "/api/deployments/",
            Some(with(json!({"schedules": [{"schedule": sched}]}))),
        )
        .await;
        assert_eq!(s, 422, "schedule {sched} -> {e}");
        assert_eq!(e["exception_message"], "Invalid request received.");
        let loc = err_loc(&e);
        assert_eq!(
            loc.as_array().map(|l| l[..4].to_vec()),
            Some(vec![
                json!("body"),
                json!("schedules"),
                json!(0),
                json!("schedule")
            ]),
            "{e}"
        );
    }
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "d"})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("missing")));
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(with(json!({"bogus": 1}))),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "bogus"]), json!("extra_forbidden"))
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(with(json!({"flow_id": "nope"}))),
    )
    .await;
    assert_eq!((s, err_loc(&e)), (422, json!(["body", "flow_id"])), "{e}");
    let (s, e) = raw(&app, "POST", "/api/deployments/", "{\"name\": \"d\",").await;
    assert_eq!((s, err_type(&e)), (422, json!("json_invalid")));
    // Nothing was created by any of these.
    let (_, n) = call(&app, "POST", "/api/deployments/count", None).await;
    assert_eq!(n, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_numbers_out_of_range_are_422_and_huge_schedules_do_not_panic() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let gt0 = |e: &Value| (err_loc(e), err_type(e));
    // Prefect's PositiveInteger limits (answers read off the reference server).
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "d", "flow_id": flow_id, "concurrency_limit": 0})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (json!(["body", "concurrency_limit"]), json!("greater_than"))
        )
    );
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/",
        Some(json!({"name": "d", "flow_id": flow_id,
            "schedules": [{"schedule": {"interval": 60}, "max_scheduled_runs": -1}]})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (
                json!(["body", "schedules", 0, "max_scheduled_runs"]),
                json!("greater_than")
            )
        )
    );
    // An interval beyond i64 microseconds and a whole-day one beyond chrono's calendar: one run
    // at the anchor, no overflow.
    for (name, interval) in [("huge", json!(1e13)), ("days", json!(8_640_000_000_000u64))] {
        let d = DeploymentBuilder::new(name)
            .flow_id(&flow_id)
            .schedule(json!({"interval": interval, "anchor_date": at(86_400)}))
            .create(&app)
            .await;
        let id = d["id"].as_str().expect("id");
        let (s, r) = call(
            &app,
            "POST",
            &format!("/api/deployments/{id}/schedule"),
            Some(json!({})),
        )
        .await;
        assert_eq!((s, r), (200, Value::Null));
        let runs = runs_of(&app, id).await;
        assert_eq!(auto_scheduled(&runs).len(), 1, "{name}: {runs}");
    }
    let d = DeploymentBuilder::new("ok")
        .flow_id(&flow_id)
        .schedule(json!({"interval": 3600}))
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id");
    let schedule = format!("/api/deployments/{id}/schedule");
    for min_time in [1e20, -1e20] {
        let (s, e) = call(
            &app,
            "POST",
            &schedule,
            Some(json!({ "min_time": min_time })),
        )
        .await;
        assert_eq!(
            (s, err_loc(&e), err_type(&e)),
            (
                422,
                json!(["body", "min_time"]),
                json!("time_delta_parsing")
            )
        );
    }
    // The runs of one call are built in memory, so their count is bounded.
    for field in ["min_runs", "max_runs"] {
        let (s, e) = call(&app, "POST", &schedule, Some(json!({ field: 100_000_000 }))).await;
        assert_eq!(
            (s, err_loc(&e), err_type(&e)),
            (422, json!(["body", field]), json!("less_than_equal"))
        );
    }
    // Like the reference: an unknown deployment schedules nothing (200, null), after the body
    // has been checked.
    let unknown = format!("/api/deployments/{}/schedule", uuid::Uuid::new_v4());
    assert_eq!(
        call(&app, "POST", &unknown, Some(json!({}))).await,
        (200, Value::Null)
    );
    let (s, e) = call(
        &app,
        "POST",
        &unknown,
        Some(json!({"max_runs": 100_000_000})),
    )
    .await;
    assert_eq!((s, err_loc(&e)), (422, json!(["body", "max_runs"])));
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"concurrency_limit": 0})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (json!(["body", "concurrency_limit"]), json!("greater_than"))
        )
    );
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"concurrency_limit": null})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, e) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedules"),
        Some(json!([{"schedule": {"interval": 60}, "max_scheduled_runs": 0}])),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (
                json!(["body", 0, "max_scheduled_runs"]),
                json!("greater_than")
            )
        )
    );
    // A failing schedules replacement (duplicate slugs) keeps the old schedules.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"schedules": [
            {"schedule": {"interval": 60}, "slug": "a"},
            {"schedule": {"interval": 120}, "slug": "a"}
        ]})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, kept) = call(
        &app,
        "GET",
        &format!("/api/deployments/{id}/schedules"),
        None,
    )
    .await;
    assert_eq!((s, &kept), (200, &json!([d["schedules"][0]])));
    let sid = d["schedules"][0]["id"].as_str().expect("schedule id");
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}/schedules/{sid}"),
        Some(json!({"max_scheduled_runs": 0})),
    )
    .await;
    assert_eq!(
        (s, gt0(&e)),
        (
            422,
            (json!(["body", "max_scheduled_runs"]), json!("greater_than"))
        )
    );
    // Pages start at 1; a page past every row is empty, not an overflow.
    let (s, e) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"page": 0})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e), err_type(&e)),
        (422, json!(["body", "page"]), json!("greater_than_equal"))
    );
    let (s, page) = call(
        &app,
        "POST",
        "/api/deployments/paginate",
        Some(json!({"page": i64::MAX, "limit": 2})),
    )
    .await;
    assert_eq!(
        (s, &page["count"], &page["results"]),
        (200, &json!(3), &json!([]))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_defaults_match_prefect() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    // What the reference server fills in when the client leaves fields out.
    let d = DeploymentBuilder::new("bare")
        .flow_id(&flow_id)
        .create(&app)
        .await;
    assert_eq!(d["pull_steps"], json!([]), "{d}");
    assert_eq!(d["parameter_openapi_schema"], json!({}), "{d}");
    assert_eq!(d["job_variables"], json!({}));
    assert_eq!(d["parameters"], json!({}));
    assert_eq!(d["tags"], json!([]));
    assert_eq!(d["schedules"], json!([]));
    assert_eq!(d["enforce_parameter_schema"], true);
    assert_eq!(d["concurrency_limit"], Value::Null);
    assert_eq!(d["global_concurrency_limit"], Value::Null);
    // Only a queue name: the queue is created in the default agent pool.
    let legacy = DeploymentBuilder::new("legacy")
        .flow_id(&flow_id)
        .queue("legacyq")
        .create(&app)
        .await;
    assert_eq!(legacy["work_queue_name"], "legacyq");
    assert_eq!(legacy["work_pool_name"], "default-agent-pool", "{legacy}");
    let (s, q) = call(
        &app,
        "GET",
        "/api/work_pools/default-agent-pool/queues/legacyq",
        None,
    )
    .await;
    assert_eq!((s, &q["id"]), (200, &legacy["work_queue_id"]));
    app.stop().await;
}
