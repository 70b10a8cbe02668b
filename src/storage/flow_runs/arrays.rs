//! PostgreSQL array inserts: every column of a batch of rows as one array parameter, so a batch
//! is one statement (`INSERT ... SELECT * FROM unnest(...)`). Used by the scheduler's run
//! inserts (`deployments`), the flow-run creation fast path (`transitions::pg_fast`) and the
//! task-run recorder (`task_runs::record`).

use crate::storage::postgres::Statement;
use crate::storage::rows::FlowRunRow;

/// PostgreSQL: `INSERT INTO flow_runs (every column) SELECT * FROM unnest(one array per column)`
/// followed by `$tail` (`RETURNING id`, with or without `ON CONFLICT DO NOTHING` before it): the
/// text whose binds [`bind_run_arrays`] supplies.
macro_rules! insert_runs_from_arrays {
    ($tail:literal) => {
        concat!(
        "INSERT INTO flow_runs (id, workspace_id, created, updated, name, flow_id, state_id, \
         state_type, state_name, state_timestamp, deployment_id, deployment_version, \
         work_queue_id, work_queue_name, work_pool_id, work_pool_name, flow_version, parameters, \
         idempotency_key, context, empirical_policy, tags, labels, parent_task_run_id, run_count, \
         expected_start_time, next_scheduled_start_time, start_time, end_time, total_run_time, \
         auto_scheduled, infrastructure_document_id, infrastructure_pid, created_by, \
         job_variables) \
         SELECT * FROM unnest(?::text[], ?::text[], ?::timestamp[], ?::timestamp[], ?::text[], \
         ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamp[], ?::text[], ?::text[], \
         ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], \
         ?::text[], ?::text[], ?::text[], ?::text[], ?::int8[], ?::timestamp[], ?::timestamp[], \
         ?::timestamp[], ?::timestamp[], ?::float8[], ?::bool[], ?::text[], ?::text[], \
         ?::text[], ?::text[]) ",
            $tail
        )
    };
}
pub(in crate::storage) use insert_runs_from_arrays;

/// PostgreSQL: every column of `runs` as one array parameter each, in the table's column order
/// (`id` … `job_variables`), for `INSERT INTO flow_runs (…) SELECT * FROM unnest(?::text[], …)`.
pub(in crate::storage) fn bind_run_arrays<'a>(
    q: Statement<'a>,
    runs: &[&'a FlowRunRow],
) -> Statement<'a> {
    use diesel::sql_types::{Array, BigInt, Bool, Double, Nullable, Text, Timestamp};
    macro_rules! bind_column {
        ($q:expr, $st:ty, |$r:ident| $e:expr) => {
            $q.bind::<Array<$st>, _>(runs.iter().map(|$r| $e).collect::<Vec<_>>())
        };
    }
    let q = bind_column!(q, Text, |r| r.id.as_str());
    let q = bind_column!(q, Text, |r| r.workspace_id.as_str());
    let q = bind_column!(q, Timestamp, |r| r.created);
    let q = bind_column!(q, Timestamp, |r| r.updated);
    let q = bind_column!(q, Text, |r| r.name.as_str());
    let q = bind_column!(q, Text, |r| r.flow_id.as_str());
    let q = bind_column!(q, Nullable<Text>, |r| r.state_id.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.state_type.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.state_name.as_deref());
    let q = bind_column!(q, Nullable<Timestamp>, |r| r.state_timestamp);
    let q = bind_column!(q, Nullable<Text>, |r| r.deployment_id.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.deployment_version.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.work_queue_id.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.work_queue_name.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.work_pool_id.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.work_pool_name.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.flow_version.as_deref());
    let q = bind_column!(q, Text, |r| r.parameters.as_str());
    let q = bind_column!(q, Nullable<Text>, |r| r.idempotency_key.as_deref());
    let q = bind_column!(q, Text, |r| r.context.as_str());
    let q = bind_column!(q, Text, |r| r.empirical_policy.as_str());
    let q = bind_column!(q, Text, |r| r.tags.as_str());
    let q = bind_column!(q, Text, |r| r.labels.as_str());
    let q = bind_column!(q, Nullable<Text>, |r| r.parent_task_run_id.as_deref());
    let q = bind_column!(q, BigInt, |r| r.run_count);
    let q = bind_column!(q, Nullable<Timestamp>, |r| r.expected_start_time);
    let q = bind_column!(q, Nullable<Timestamp>, |r| r.next_scheduled_start_time);
    let q = bind_column!(q, Nullable<Timestamp>, |r| r.start_time);
    let q = bind_column!(q, Nullable<Timestamp>, |r| r.end_time);
    let q = bind_column!(q, Double, |r| r.total_run_time);
    let q = bind_column!(q, Bool, |r| r.auto_scheduled);
    let q = bind_column!(q, Nullable<Text>, |r| r
        .infrastructure_document_id
        .as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.infrastructure_pid.as_deref());
    let q = bind_column!(q, Nullable<Text>, |r| r.created_by.as_deref());
    bind_column!(q, Text, |r| r.job_variables.as_str())
}

/// PostgreSQL: binds every column of `$states` (a slice of flow-run or task-run state rows;
/// `$run` names their run-id field) to `$q` as one array parameter each, in the order of both
/// state tables' columns (`id` … `state_details`).
macro_rules! bind_state_arrays {
    ($q:expr, $states:expr, $run:ident) => {{
        use diesel::sql_types::{Array, Nullable, Text, Timestamp};
        let states = $states;
        $q.bind::<Array<Text>, _>(states.iter().map(|s| s.id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(
                states
                    .iter()
                    .map(|s| s.workspace_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Timestamp>, _>(states.iter().map(|s| s.created).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(states.iter().map(|s| s.$run.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(
                states
                    .iter()
                    .map(|s| s.state_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .bind::<Array<Timestamp>, _>(states.iter().map(|s| s.timestamp).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                states
                    .iter()
                    .map(|s| s.message.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                states.iter().map(|s| s.data.as_deref()).collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(
                states
                    .iter()
                    .map(|s| s.state_details.as_str())
                    .collect::<Vec<_>>(),
            )
    }};
}
pub(in crate::storage) use bind_state_arrays;
