//! Deployment schedules and the runs made from them: the schedules routes, the scheduler
//! service (pause and resume, inactive schedules), the /schedule route with cron schedules, and
//! a batch whose idempotency keys were taken meanwhile.

use std::time::Duration;

use chrono::Utc;
use orrery::ids::FlowRunId;
use orrery::storage::deployments::IfPaused;
use serde_json::{json, Value};

use super::{auto_scheduled, parse_ts, runs_of, scheduled_run};
use crate::support::{
    call, create_flow, detail, err_loc, err_type, names, wait_for, DeploymentBuilder, TestApp,
    WorkPoolBuilder,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_schedules_crud() {
    let app = TestApp::start().await;
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .schedule(json!({"interval": 3600}))
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id").to_string();
    let base = format!("/api/deployments/{id}/schedules");

    let (s, list) = call(&app, "GET", &base, None).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["schedule"]["interval"], 3600.0);

    let (s, created) = call(
        &app,
        "POST",
        &base,
        Some(json!([{"schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}, "active": false, "slug": "morning", "parameters": {"n": 3}, "max_scheduled_runs": 5}])),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created.as_array().map(Vec::len), Some(1));
    let c = &created[0];
    assert!(c["id"].is_string());
    assert_eq!(c["deployment_id"], json!(id));
    assert_eq!(
        c["schedule"],
        json!({"cron": "0 9 * * *", "timezone": "Europe/Paris", "day_or": true})
    );
    assert_eq!(
        (
            &c["active"],
            &c["slug"],
            &c["parameters"],
            &c["max_scheduled_runs"]
        ),
        (
            &json!(false),
            &json!("morning"),
            &json!({"n": 3}),
            &json!(5)
        )
    );
    let sid = c["id"].as_str().expect("schedule id").to_string();
    let (_, list) = call(&app, "GET", &base, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));

    // Slugs are unique per deployment.
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(json!([{"schedule": {"cron": "0 10 * * *"}, "slug": "morning"}])),
    )
    .await;
    // The reference says this on PostgreSQL; on SQLite its generic integrity message.
    assert_eq!(s, 409, "{e}");
    assert!(
        e == detail("Schedule slugs must be unique within a deployment.")
            || e == detail("Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details."),
        "{e}"
    );
    let (_, list) = call(&app, "GET", &base, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "nothing was added");
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(json!([{"schedule": {"cron": "61 * * * *"}}])),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    let bad_cron_loc = err_loc(&e);
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(json!({"schedule": {"cron": "0 9 * * *"}})),
    )
    .await;
    assert_eq!(
        (s, err_loc(&e)),
        (422, json!(["body"])),
        "the body is a list: {e}"
    );

    // PATCH one schedule.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("{base}/{sid}"),
        Some(json!({"active": true, "schedule": {"cron": "0 8 * * *", "timezone": "UTC"}})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, list) = call(&app, "GET", &base, None).await;
    let patched = list
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["id"] == json!(sid))
        .cloned()
        .expect("patched schedule");
    assert_eq!(
        (
            &patched["active"],
            &patched["schedule"]["cron"],
            &patched["slug"]
        ),
        (&json!(true), &json!("0 8 * * *"), &json!("morning"))
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("{base}/{sid}"),
        Some(json!({"schedule": {"cron": "0 8 * *"}})),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        err_loc(&e).as_array().map(|l| l[..2].to_vec()),
        Some(vec![json!("body"), json!("schedule")]),
        "{e}"
    );
    let (s, e) = call(
        &app,
        "PATCH",
        &format!("{base}/{sid}"),
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!((s, err_type(&e)), (422, json!("extra_forbidden")));

    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("{base}/{unknown}"),
            Some(json!({"active": false}))
        )
        .await,
        (404, detail("Schedule not found."))
    );
    let (s, _) = call(&app, "DELETE", &format!("{base}/{sid}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(
        call(&app, "DELETE", &format!("{base}/{sid}"), None).await,
        (404, detail("Schedule not found."))
    );
    let (_, list) = call(&app, "GET", &base, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let other = format!("/api/deployments/{unknown}/schedules");
    let dnf = || (404, detail("Deployment not found."));
    assert_eq!(call(&app, "GET", &other, None).await, dnf());
    assert_eq!(
        call(
            &app,
            "POST",
            &other,
            Some(json!([{"schedule": {"interval": 60}}]))
        )
        .await,
        dnf()
    );
    assert_eq!(
        call(
            &app,
            "PATCH",
            &format!("{other}/{sid}"),
            Some(json!({"active": false}))
        )
        .await,
        dnf()
    );
    assert_eq!(
        call(&app, "DELETE", &format!("{other}/{sid}"), None).await,
        dnf()
    );
    // The body is the list itself: the error's location starts at its index.
    assert_eq!(
        bad_cron_loc.as_array().map(|l| l[..3].to_vec()),
        Some(vec![json!("body"), json!(0), json!("schedule")]),
        "{bad_cron_loc}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_creates_runs_and_pause_removes_them() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "300")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "200")
        .start()
        .await;
    WorkPoolBuilder::new("p").create(&app).await;
    let flow_id = create_flow(&app, "etl").await;
    let anchor = "2026-01-01T00:00:00Z";
    let created_at = Utc::now();
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .pool("p")
        .parameters(json!({"a": 1, "b": 1}))
        .with(json!({"tags": ["t"]}))
        .schedules(
            json!([{"schedule": {"interval": 600, "anchor_date": anchor, "timezone": "UTC"},
                           "parameters": {"b": 2}, "slug": "every10"}]),
        )
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id").to_string();
    let sched_id = d["schedules"][0]["id"]
        .as_str()
        .expect("schedule id")
        .to_string();
    let manual = scheduled_run(&app, &id, None, 7200, "manual").await;

    // Every 10 minutes: at least 3 runs and at least an hour ahead — 7 runs, the last one at or
    // past now + 1 h (the reference stops after the first date that satisfies both minimums).
    wait_for(
        "the scheduler to create runs",
        30,
        || async { runs_of(&app, &id).await },
        |r| auto_scheduled(r).len() >= 7,
    )
    .await;
    let runs = runs_of(&app, &id).await;
    let auto = auto_scheduled(&runs);
    // Checked at the end: exactly 7 (see below); the rest of the test works with what was created.
    let count = auto.len();
    assert!(count >= 6, "{runs}");
    let first = parse_ts(&auto[0]["next_scheduled_start_time"]);
    let last = parse_ts(&auto[count - 1]["next_scheduled_start_time"]);
    assert!(
        first >= created_at && first <= Utc::now() + chrono::Duration::seconds(600),
        "{first}"
    );
    for r in &auto {
        let t = parse_ts(&r["next_scheduled_start_time"]);
        assert_eq!(t.timestamp() % 600, 0, "aligned on the anchor: {t}");
        assert_eq!(
            r["parameters"],
            json!({"a": 1, "b": 2}),
            "schedule parameters override the deployment's"
        );
        assert_eq!(r["state_type"], "SCHEDULED");
        assert_eq!(r["state_name"], "Scheduled");
        assert_eq!(r["work_queue_name"], "default");
        assert_eq!(r["work_pool_name"], "p");
        assert_eq!(r["tags"], json!(["auto-scheduled", "t"]));
        assert_eq!(
            r["created_by"],
            json!({"id": sched_id, "type": "SCHEDULE", "display_value": "every10"})
        );
        assert_eq!(r["expected_start_time"], r["next_scheduled_start_time"]);
        let key = format!(
            "scheduled {id} {sched_id} {}",
            t.format("%Y-%m-%d %H:%M:%S+00:00")
        );
        assert_eq!(r["idempotency_key"], json!(key));
    }
    let (_, state) = call(
        &app,
        "GET",
        &format!(
            "/api/flow_run_states/{}",
            auto[0]["state_id"].as_str().expect("state id")
        ),
        None,
    )
    .await;
    assert_eq!(state["message"], "Flow run scheduled");

    // More passes do not duplicate them.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), count);

    // Pausing deletes the future auto-scheduled runs (not the manual one); nothing new appears.
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/pause_deployment"),
        None,
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    let (_, read) = call(&app, "GET", &format!("/api/deployments/{id}"), None).await;
    assert_eq!(read["paused"], true);
    assert_eq!(
        read["schedules"][0]["active"], true,
        "pausing the deployment leaves schedules active"
    );
    let runs = runs_of(&app, &id).await;
    assert_eq!(auto_scheduled(&runs).len(), 0, "{runs}");
    assert_eq!(names(&runs), ["manual"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        auto_scheduled(&runs_of(&app, &id).await).len(),
        0,
        "a paused deployment gets no runs"
    );

    // Resuming brings them back.
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/resume_deployment"),
        None,
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    wait_for(
        "runs after resume",
        30,
        || async { runs_of(&app, &id).await },
        |r| auto_scheduled(r).len() == count,
    )
    .await;

    // PATCH paused=true does the same as pause_deployment.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"paused": true})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 0);
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}"),
        Some(json!({"paused": false})),
    )
    .await;
    assert_eq!(s, 204);
    wait_for(
        "runs after unpausing",
        30,
        || async { runs_of(&app, &id).await },
        |r| auto_scheduled(r).len() == count,
    )
    .await;

    // An inactive schedule gets no runs; turning it off removes its future runs.
    let (s, _) = call(
        &app,
        "PATCH",
        &format!("/api/deployments/{id}/schedules/{sched_id}"),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 0);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 0);
    assert_eq!(manual["state_type"], "SCHEDULED");

    for bad in ["pause_deployment", "resume_deployment"] {
        assert_eq!(
            call(
                &app,
                "POST",
                &format!("/api/deployments/{}/{bad}", uuid::Uuid::new_v4()),
                None
            )
            .await,
            (404, detail("Deployment not found"))
        );
    }
    // Every 10 minutes: at least 3 runs and at least an hour ahead. The reference stops after
    // the first date that satisfies both minimums, so that date (at or past now + 1 h) is
    // included: 7 runs.
    assert!(
        last >= created_at + chrono::Duration::seconds(3600),
        "{last}"
    );
    assert_eq!(count, 7, "runs created by the scheduler");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_route_and_cron_runs() {
    // Services off: only the /schedule route creates runs here.
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "0")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "0")
        .start()
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .with(json!({"paused": true}))
        .schedule(json!({"cron": "0 9 * * *", "timezone": "Europe/Paris"}))
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id").to_string();
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 2, "max_runs": 2})),
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    let runs = runs_of(&app, &id).await;
    let auto = auto_scheduled(&runs);
    assert_eq!(
        auto.len(),
        2,
        "the route schedules even a paused deployment: {runs}"
    );
    for r in &auto {
        let local =
            parse_ts(&r["next_scheduled_start_time"]).with_timezone(&chrono_tz::Europe::Paris);
        assert_eq!(local.timestamp_subsec_micros(), 0, "on the second: {local}");
        assert_eq!(
            local.format("%H:%M:%S").to_string(),
            "09:00:00",
            "09:00 in Paris: {local}"
        );
        assert_eq!(
            r["created_by"]["display_value"], "CronSchedule",
            "no slug: the schedule's class name"
        );
    }
    // Idempotent: the same dates are not created twice.
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 2, "max_runs": 2})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 2);
    app.stop().await;
}

/// A secondly RRule (anchored in 2020, as Prefect anchors rules without DTSTART) next to an
/// ordinary schedule: both get their runs from the scheduler's first passes, the secondly ones on
/// whole seconds from now on. Rules that can never produce a run are refused with 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondly_rrule_and_a_normal_schedule_both_get_their_runs() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "300")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "200")
        .start()
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let started = Utc::now();
    let secondly = DeploymentBuilder::new("every-second")
        .flow_id(&flow_id)
        .schedule(json!({"rrule": "FREQ=SECONDLY", "timezone": "UTC"}))
        .create(&app)
        .await;
    let normal = DeploymentBuilder::new("every-ten-minutes")
        .flow_id(&flow_id)
        .schedule(json!({"interval": 600, "anchor_date": "2026-01-01T00:00:00Z"}))
        .create(&app)
        .await;
    let (sid, nid) = (
        secondly["id"].as_str().expect("id").to_string(),
        normal["id"].as_str().expect("id").to_string(),
    );
    wait_for(
        "the scheduler to create both deployments' runs",
        30,
        || async { (runs_of(&app, &sid).await, runs_of(&app, &nid).await) },
        |(s, n)| auto_scheduled(s).len() >= 3 && auto_scheduled(n).len() >= 3,
    )
    .await;
    let runs = runs_of(&app, &sid).await;
    for r in auto_scheduled(&runs) {
        let t = parse_ts(&r["next_scheduled_start_time"]);
        assert_eq!(t.timestamp_subsec_micros(), 0, "on the second: {t}");
        assert!(
            t >= started - chrono::Duration::seconds(1),
            "from now on, not from 2020: {t}"
        );
    }

    for (rrule, why) in [
        ("FREQ=SECONDLY;INTERVAL=0", "INTERVAL"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no dates"),
    ] {
        let (s, body) = call(
            &app,
            "POST",
            &format!("/api/deployments/{sid}/schedules"),
            Some(json!([{"schedule": {"rrule": rrule}}])),
        )
        .await;
        assert_eq!(s, 422, "{rrule}: {body}");
        assert!(body.to_string().contains(why), "{rrule}: {body}");
    }
    app.stop().await;
}

/// A scheduled run whose idempotency key was taken after the scheduler looked (another
/// scheduler's insert) is skipped, and the rest of its batch still goes in (on PostgreSQL the
/// plain INSERT fails on the taken key and the batch is inserted again skipping it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_whose_key_was_taken_meanwhile_are_skipped() {
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "0")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "0")
        .start()
        .await;
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("d")
        .flow_id(&flow_id)
        .schedule(json!({"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"}))
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id").to_string();
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 3, "max_runs": 3})),
    )
    .await;
    assert_eq!((s, body), (200, Value::Null));
    let before = auto_scheduled(&runs_of(&app, &id).await);
    assert_eq!(before.len(), 3);
    let state = app.app_state();
    let db = &state.stores.orion;
    let ws = &orrery::ids::WorkspaceId::new(orrery::storage::accounts::DEFAULT_WORKSPACE_ID);
    let mut c = db.read().await.expect("connection");
    let (first, _) = orrery::storage::flow_runs::find(
        &mut c,
        ws,
        &FlowRunId::new(before[0]["id"].as_str().expect("id")),
    )
    .await
    .expect("read")
    .expect("the run");
    // Two runs with taken keys between two new ones.
    let mut rows = Vec::new();
    for (i, key) in ["new 1", "", "", "new 2"].iter().enumerate() {
        let mut r = first.clone();
        r.id = FlowRunId::random();
        r.state_id = Some(r.id.to_string());
        r.name = format!("copy-{i}");
        r.idempotency_key = if key.is_empty() {
            before[i]["idempotency_key"].as_str().map(str::to_string)
        } else {
            Some(format!(
                "{}{key}",
                first.idempotency_key.clone().expect("key")
            ))
        };
        rows.push(r);
    }
    let paused_later: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.id = FlowRunId::random();
            r.state_id = Some(r.id.to_string());
            r.idempotency_key = Some(format!("{} later", r.id));
            r
        })
        .collect();
    let n = db
        .write_bulk(async move |c| {
            orrery::storage::deployments::insert_scheduled_runs(c, rows, IfPaused::Skip).await
        })
        .await
        .expect("the batch goes in");
    assert_eq!(n, 2);
    let after = auto_scheduled(&runs_of(&app, &id).await);
    let mut names: Vec<&str> = after.iter().filter_map(|r| r["name"].as_str()).collect();
    names.retain(|n| n.starts_with("copy-"));
    names.sort();
    assert_eq!(names, ["copy-0", "copy-3"]);
    assert_eq!(after.len(), 5);

    // A pause committed after the scheduler read the deployment: its batch is dropped, so the
    // pause's removal of the future runs is not undone; `POST .../schedule` still inserts.
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/pause_deployment"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let again = paused_later.clone();
    let n = db
        .write_bulk(async move |c| {
            orrery::storage::deployments::insert_scheduled_runs(c, again, IfPaused::Skip).await
        })
        .await
        .expect("the batch is read");
    assert_eq!(n, 0, "no run for a paused deployment");
    let n = db
        .write_bulk(async move |c| {
            orrery::storage::deployments::insert_scheduled_runs(c, paused_later, IfPaused::Insert)
                .await
        })
        .await
        .expect("the batch goes in");
    assert_eq!(
        n, 4,
        "an explicit schedule request schedules a paused deployment"
    );
    app.stop().await;
}

/// Deleting a deployment while a scheduler pass is inserting its runs leaves no orphan: the
/// pass holds the deployment row (`FOR SHARE`, as `insert_scheduled_runs` does) and inserts a
/// run; the delete waits for it and then removes that run too. Deterministic: the test plays
/// the scheduler's transaction itself on PostgreSQL (SQLite's single writer cannot interleave).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_deleted_during_a_scheduler_pass_leaves_no_scheduled_run() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let app = TestApp::builder()
        .setting("ORRERY__SERVICES__SCHEDULER_INTERVAL_MS", "0")
        .setting("ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS", "0")
        .start()
        .await;
    let Some(db_url) = app.pg_url.clone() else {
        eprintln!("skipped: runs on the PostgreSQL pass");
        app.stop().await;
        return;
    };
    let flow_id = create_flow(&app, "etl").await;
    let d = DeploymentBuilder::new("doomed")
        .flow_id(&flow_id)
        .schedule(json!({"interval": 3600}))
        .create(&app)
        .await;
    let id = d["id"].as_str().expect("id").to_string();
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/deployments/{id}/schedule"),
        Some(json!({"min_runs": 1, "max_runs": 1})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(auto_scheduled(&runs_of(&app, &id).await).len(), 1);

    // The scheduler's transaction: the deployment row held, a new run inserted, not committed.
    let mut pass = AsyncPgConnection::establish(&db_url)
        .await
        .expect("connect");
    pass.batch_execute(&format!(
        "SET search_path TO orion; BEGIN; \
         SELECT id FROM deployments WHERE id = '{id}' FOR SHARE; \
         CREATE TEMP TABLE next_run AS SELECT * FROM flow_runs WHERE deployment_id = '{id}' LIMIT 1; \
         UPDATE next_run SET id = gen_random_uuid()::text, idempotency_key = idempotency_key || ' next'; \
         UPDATE next_run SET state_id = id; \
         INSERT INTO flow_runs SELECT * FROM next_run;"
    ))
    .await
    .expect("the pass's statements");
    let deleting = {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/api/deployments/{id}")),
        );
        tokio::spawn(async move { client.delete(url).send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    pass.batch_execute("COMMIT").await.expect("commit the pass");
    let status = deleting
        .await
        .expect("delete task")
        .expect("delete answered");
    assert_eq!(status, 204);
    let left = runs_of(&app, &id).await;
    assert_eq!(
        left.as_array().map(Vec::len),
        Some(0),
        "scheduled runs of the deleted deployment: {left}"
    );
    app.stop().await;
}
