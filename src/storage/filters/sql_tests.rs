//! Rendering of `Where` on both backends.

use super::*;
use diesel::prelude::*;

use crate::storage::schema::flow_runs;

fn pg(w: &Where) -> String {
    diesel::debug_query::<diesel::pg::Pg, _>(
        &flow_runs::table.select(flow_runs::id).filter(w.clone()),
    )
    .to_string()
}

fn sqlite(w: &Where) -> String {
    diesel::debug_query::<diesel::sqlite::Sqlite, _>(
        &flow_runs::table.select(flow_runs::id).filter(w.clone()),
    )
    .to_string()
}

#[test]
fn renders_lists_per_backend_and_values_as_binds() {
    let w = Where::all(vec![
        Where::is_in(col!(flow_runs::id), vec!["a".into(), "b".into()]),
        Where::any(vec![
            Where::ilike(col!(flow_runs::name), "%x%".into(), true),
            Where::is_null(col!(flow_runs::end_time)),
        ]),
    ]);
    let p = pg(&w);
    assert!(
        p.contains(r#"("flow_runs"."id" = ANY($1) AND (lower("flow_runs"."name") LIKE $2 ESCAPE '\' OR "flow_runs"."end_time" IS NULL))"#),
        "{p}"
    );
    let s = sqlite(&w);
    assert!(s.contains("`flow_runs`.`id` IN (?, ?)"), "{s}");
    assert!(!s.contains("'a'"), "values are binds: {s}");
}

#[test]
fn empty_lists_and_empty_combinations() {
    assert!(pg(&Where::is_in(col!(flow_runs::id), vec![])).contains("WHERE 1=0"));
    assert!(pg(&Where::not_in(col!(flow_runs::id), vec![])).contains("WHERE 1=1"));
    assert_eq!(Where::all(vec![]), Where::True);
    assert_eq!(Where::any(vec![]), Where::True);
}

#[test]
fn subselects_name_their_table_and_renamed_columns_use_their_sql_name() {
    let w = Where::in_select(
        col!(flow_runs::parent_task_run_id),
        col!(task_runs::id),
        Where::not_null(col!(task_runs::flow_run_id)),
    );
    let s = sqlite(&w);
    assert!(
        s.contains("`flow_runs`.`parent_task_run_id` IN (SELECT `task_runs`.`id` FROM `task_runs` WHERE `task_runs`.`flow_run_id` IS NOT NULL)"),
        "{s}"
    );
    assert_eq!(col!(work_pools::pool_type).name, "type");
}
