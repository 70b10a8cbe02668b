//! Flow-run transitions at the storage level: a transition writes only its own columns, and
//! concurrent transitions of one run lose no write.

use serde_json::json;

use crate::support::{call, FlowRunBuilder, TestApp};

/// A transition writes only the columns it owns: a worker's `infrastructure_pid` (or a PATCH of
/// the name or labels) that lands between the transition's read and its write survives. The
/// decision below plays the stale copy: it returns the run with the values it read before the
/// PATCH, and the write must not put them back.
/// `run` moved to a new RUNNING state at `now`: the write a transition decision would return.
fn running_write(
    mut run: orrery::storage::rows::FlowRunRow,
    now: chrono::NaiveDateTime,
) -> orrery::storage::transitions::FlowRunWrite {
    let state_id = uuid::Uuid::new_v4().to_string();
    run.updated = now;
    run.state_id = Some(state_id.clone());
    run.state_type = Some("RUNNING".into());
    run.state_name = Some("Running".into());
    run.state_timestamp = Some(now);
    let state = orrery::storage::rows::FlowRunStateRow {
        id: state_id,
        workspace_id: run.workspace_id.clone(),
        created: now,
        flow_run_id: run.id.clone(),
        state_type: "RUNNING".into(),
        name: "Running".into(),
        timestamp: now,
        message: None,
        data: None,
        state_details: "{}".into(),
    };
    orrery::storage::transitions::FlowRunWrite {
        state: Some(state),
        run: Some(run),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_does_not_overwrite_a_concurrent_patch() {
    use orrery::storage::transitions::transition_flow_run;
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("narrow-writes")
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
    let id = orrery::ids::FlowRunId::new(run["id"].as_str().expect("id"));
    let state = app.app_state();
    let ws = &orrery::ids::WorkspaceId::new(orrery::storage::accounts::DEFAULT_WORKSPACE_ID);
    let mut c = state.stores.orion.read().await.expect("connection");
    let (before, _) = orrery::storage::flow_runs::find(&mut c, ws, &id)
        .await
        .expect("read")
        .expect("the run");
    let patched = call(
        &app,
        "PATCH",
        &format!("/api/flow_runs/{id}"),
        Some(json!({"name": "renamed", "infrastructure_pid": "4242"})),
    )
    .await;
    assert_eq!(patched.0, 204);
    let now = chrono::Utc::now().naive_utc();
    let written = transition_flow_run(&state.stores.orion, ws, &id, now, move |_ctx| {
        let mut stale = before.clone();
        stale.run_count = 1;
        stale.start_time = Some(now);
        let write = running_write(stale, now);
        (write, ())
    })
    .await
    .expect("transition");
    assert_eq!(written, Some(()));
    let (_, got) = call(&app, "GET", &format!("/api/flow_runs/{id}"), None).await;
    assert_eq!(
        (
            &got["state"]["type"],
            &got["run_count"],
            &got["name"],
            &got["infrastructure_pid"]
        ),
        (
            &json!("RUNNING"),
            &json!(1),
            &json!("renamed"),
            &json!("4242")
        )
    );
    app.stop().await;
}

/// Concurrent transitions of one run never lose each other's writes: every transition that
/// reports success was made on the state it read (a lost race is retried from a fresh read), so
/// a counter each one increments ends at the number of successes, and the history holds exactly
/// one state per success. (On PostgreSQL this drives the single-statement path, whose guard on
/// the run's state id is all that stands between two workers and a lost update.)
#[actix_web::test]
async fn concurrent_transitions_of_one_run_lose_no_write() {
    use orrery::storage::transitions::transition_flow_run;
    let app = TestApp::start().await;
    let run = FlowRunBuilder::flow("racing-transitions")
        .state(json!({"type": "PENDING"}))
        .create(&app)
        .await;
    let id = orrery::ids::FlowRunId::new(run["id"].as_str().expect("id"));
    let state = app.app_state();
    let ws = &orrery::ids::WorkspaceId::new(orrery::storage::accounts::DEFAULT_WORKSPACE_ID);
    let attempts = (0..8).map(|_| {
        let (db, id) = (state.stores.orion.clone(), id.clone());
        async move {
            let now = chrono::Utc::now().naive_utc();
            transition_flow_run(&db, ws, &id, now, move |ctx| {
                let mut run = ctx.run.clone();
                run.run_count += 1;
                let write = running_write(run, now);
                (write, ())
            })
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let succeeded = results.iter().filter(|r| matches!(r, Ok(Some(())))).count();
    // Only "the run kept changing" may fail, never anything else.
    for r in &results {
        if let Err(e) = r {
            assert!(e.to_string().contains("kept changing"), "{e}");
        }
    }
    assert!(succeeded >= 1);
    let mut c = state.stores.orion.read().await.expect("connection");
    let (run, _) = orrery::storage::flow_runs::find(&mut c, ws, &id)
        .await
        .expect("read")
        .expect("the run");
    let history = orrery::storage::flow_runs::list_states(&mut c, ws, &id)
        .await
        .expect("states");
    assert_eq!(
        (run.run_count, history.len()),
        (succeeded as i64, succeeded + 1)
    );
    assert!(history.iter().any(|s| Some(&s.id) == run.state_id.as_ref()));
    app.stop().await;
}
