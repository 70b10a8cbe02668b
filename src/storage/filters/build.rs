//! The filters of flows, flow runs, task runs, logs, deployments and work pools/queues as
//! [`Where`] conditions (the reference server's `_apply_*_filters`). Pure: a parsed filter in, a
//! condition out; no connection, no backend.

use super::pools::{deployment, queues_in_pools, runs_in_pools};
use super::sql::{CmpOp, Where};
use super::{escape_like, ids, naive, tag_pattern};
use crate::col;
use crate::query::{
    ExistsFilter, FlowFilter, FlowRunFilter, IdFilter, LogFilter, NameFilter, NullableIdFilter,
    Operator, Related, StateFilter, StringsFilter, TagsFilter, TaskRunFilter, TextFilter,
    TimeFilter,
};
use crate::storage::filters::sql::Col;

/// Combines conditions with a filter's operator (nothing: true).
pub fn combine(op: Operator, conds: Vec<Where>) -> Where {
    match op {
        Operator::And => Where::all(conds),
        Operator::Or => Where::any(conds),
    }
}

pub(super) fn id_conds(out: &mut Vec<Where>, f: &Option<IdFilter>, col: Col) {
    if let Some(id) = f {
        if let Some(v) = &id.any_ {
            out.push(Where::is_in(col, ids(v)));
        }
        if let Some(v) = &id.not_any_ {
            out.push(Where::not_in(col, ids(v)));
        }
    }
}

/// The conditions of a `TimeFilter` on a nullable timestamp column.
fn time_conds(out: &mut Vec<Where>, f: &Option<TimeFilter>, col: Col) {
    let Some(f) = f else { return };
    if let Some(t) = &f.before_ {
        out.push(Where::cmp(col, CmpOp::Le, naive(t)));
    }
    if let Some(t) = &f.after_ {
        out.push(Where::cmp(col, CmpOp::Ge, naive(t)));
    }
    match f.is_null_ {
        Some(true) => out.push(Where::is_null(col)),
        Some(false) => out.push(Where::not_null(col)),
        None => {}
    }
}

/// A flow run's `start_time` filter: its bounds compare the time the run started or, before it
/// starts, the time it is expected to, as the reference does (a window of START_TIME keeps the
/// scheduled and late runs in it); `is_null_` asks about `start_time` itself.
fn started_conds(out: &mut Vec<Where>, f: &Option<TimeFilter>) {
    let Some(f) = f else { return };
    let (started, expected) = (
        col!(flow_runs::start_time),
        col!(flow_runs::expected_start_time),
    );
    if let Some(t) = &f.before_ {
        out.push(Where::cmp_coalesce(started, expected, CmpOp::Le, naive(t)));
    }
    if let Some(t) = &f.after_ {
        out.push(Where::cmp_coalesce(started, expected, CmpOp::Ge, naive(t)));
    }
    match f.is_null_ {
        Some(true) => out.push(Where::is_null(started)),
        Some(false) => out.push(Where::not_null(started)),
        None => {}
    }
}

pub(super) fn name_conds(out: &mut Vec<Where>, f: &Option<NameFilter>, col: Col) {
    let Some(f) = f else { return };
    if let Some(v) = &f.any_ {
        out.push(Where::is_in(col, v.clone()));
    }
    if let Some(v) = &f.not_any_ {
        out.push(Where::not_in(col, v.clone()));
    }
    if let Some(like) = &f.like_ {
        out.push(Where::ilike(
            col,
            format!("%{}%", like.to_lowercase()),
            false,
        ));
    }
    if let Some(prefixes) = &f.startswith_ {
        let any = prefixes
            .iter()
            .map(|p| Where::like(col, format!("{}%", escape_like(p))))
            .collect();
        // `startswith_: []` restricts nothing.
        out.push(Where::any(any));
    }
}

pub(super) fn tags_conds(out: &mut Vec<Where>, f: &Option<TagsFilter>, col: Col) {
    let Some(f) = f else { return };
    if let Some(all) = &f.all_ {
        for t in all {
            out.push(Where::like(col, tag_pattern(t)));
        }
    }
    if let Some(any) = &f.any_ {
        out.push(if any.is_empty() {
            Where::False
        } else {
            Where::any(
                any.iter()
                    .map(|t| Where::like(col, tag_pattern(t)))
                    .collect(),
            )
        });
    }
    match f.is_null_ {
        Some(true) => out.push(Where::eq(col, "[]")),
        Some(false) => out.push(Where::ne(col, "[]")),
        None => {}
    }
}

pub(super) fn strings_conds(out: &mut Vec<Where>, f: &Option<StringsFilter>, col: Col) {
    let Some(f) = f else { return };
    if let Some(v) = &f.any_ {
        out.push(Where::is_in(col, v.clone()));
    }
    if let Some(v) = &f.not_any_ {
        out.push(Where::not_in(col, v.clone()));
    }
    match f.is_null_ {
        Some(true) => out.push(Where::is_null(col)),
        Some(false) => out.push(Where::not_null(col)),
        None => {}
    }
}

/// A nullable id column filtered like a strings column.
fn nullable_id_conds(out: &mut Vec<Where>, f: &Option<NullableIdFilter>, col: Col) {
    if let Some(p) = f {
        let s = StringsFilter {
            any_: p.any_.as_deref().map(ids),
            not_any_: p.not_any_.as_deref().map(ids),
            is_null_: p.is_null_,
        };
        strings_conds(out, &Some(s), col);
    }
}

fn state_conds(out: &mut Vec<Where>, f: &Option<StateFilter>, type_col: Col, name_col: Col) {
    if let Some(s) = f {
        let mut inner = Vec::new();
        strings_conds(&mut inner, &s.state_type, type_col);
        strings_conds(&mut inner, &s.name, name_col);
        if !inner.is_empty() {
            out.push(combine(s.operator, inner));
        }
    }
}

pub fn flow(f: &FlowFilter) -> Where {
    let mut c = Vec::new();
    id_conds(&mut c, &f.id, col!(flows::id));
    name_conds(&mut c, &f.name, col!(flows::name));
    tags_conds(&mut c, &f.tags, col!(flows::tags));
    if let Some(is_null) = f.deployment.as_ref().and_then(|d| d.is_null_) {
        let with = Where::in_select(col!(flows::id), col!(deployments::flow_id), Where::True);
        c.push(if is_null { with.negate() } else { with });
    }
    combine(f.operator, c)
}

/// `created_by` matches on the JSON text of the column (`"type":…` / `"id":"…"`).
fn created_by_conds(out: &mut Vec<Where>, f: &FlowRunFilter) {
    let Some(cb) = &f.created_by else { return };
    let column = col!(flow_runs::created_by);
    if let Some(types) = &cb.type_ {
        out.push(Where::any(
            types
                .iter()
                .map(|t| {
                    let json = serde_json::to_string(t).unwrap_or_default();
                    Where::like(column, format!("%\"type\":{}%", escape_like(&json)))
                })
                .collect(),
        ));
    }
    if let Some(ids_) = &cb.id_ {
        out.push(Where::any(
            ids_.iter()
                .map(|i| Where::like_raw(column, format!("%\"id\":\"{i}\"%")))
                .collect(),
        ));
    }
    match cb.is_null_ {
        Some(true) => out.push(Where::is_null(column)),
        Some(false) => out.push(Where::not_null(column)),
        None => {}
    }
}

pub fn flow_run(f: &FlowRunFilter) -> Where {
    let mut c = Vec::new();
    id_conds(&mut c, &f.id, col!(flow_runs::id));
    name_conds(&mut c, &f.name, col!(flow_runs::name));
    tags_conds(&mut c, &f.tags, col!(flow_runs::tags));
    nullable_id_conds(&mut c, &f.deployment_id, col!(flow_runs::deployment_id));
    strings_conds(&mut c, &f.work_queue_name, col!(flow_runs::work_queue_name));
    state_conds(
        &mut c,
        &f.state,
        col!(flow_runs::state_type),
        col!(flow_runs::state_name),
    );
    strings_conds(&mut c, &f.flow_version, col!(flow_runs::flow_version));
    started_conds(&mut c, &f.start_time);
    time_conds(&mut c, &f.end_time, col!(flow_runs::end_time));
    time_conds(
        &mut c,
        &f.expected_start_time,
        col!(flow_runs::expected_start_time),
    );
    time_conds(
        &mut c,
        &f.next_scheduled_start_time,
        col!(flow_runs::next_scheduled_start_time),
    );
    if let Some(IdFilter {
        any_: Some(parents),
        ..
    }) = &f.parent_flow_run_id
    {
        c.push(Where::in_select(
            col!(flow_runs::parent_task_run_id),
            col!(task_runs::id),
            Where::is_in(col!(task_runs::flow_run_id), ids(parents)),
        ));
    }
    nullable_id_conds(
        &mut c,
        &f.parent_task_run_id,
        col!(flow_runs::parent_task_run_id),
    );
    strings_conds(&mut c, &f.idempotency_key, col!(flow_runs::idempotency_key));
    created_by_conds(&mut c, f);
    combine(f.operator, c)
}

pub fn task_run(f: &TaskRunFilter) -> Where {
    let mut c = Vec::new();
    id_conds(&mut c, &f.id, col!(task_runs::id));
    name_conds(&mut c, &f.name, col!(task_runs::name));
    tags_conds(&mut c, &f.tags, col!(task_runs::tags));
    state_conds(
        &mut c,
        &f.state,
        col!(task_runs::state_type),
        col!(task_runs::state_name),
    );
    time_conds(&mut c, &f.start_time, col!(task_runs::start_time));
    time_conds(&mut c, &f.end_time, col!(task_runs::end_time));
    time_conds(
        &mut c,
        &f.expected_start_time,
        col!(task_runs::expected_start_time),
    );
    if let Some(ExistsFilter {
        exists_: Some(exists),
    }) = &f.subflow_runs
    {
        let sub = Where::in_select(
            col!(task_runs::id),
            col!(flow_runs::parent_task_run_id),
            Where::not_null(col!(flow_runs::parent_task_run_id)),
        );
        c.push(if *exists { sub } else { sub.negate() });
    }
    nullable_id_conds(&mut c, &f.flow_run_id, col!(task_runs::flow_run_id));
    combine(f.operator, c)
}

pub fn log(f: &LogFilter) -> Where {
    let mut c = Vec::new();
    if let Some(l) = &f.level {
        if let Some(v) = l.ge_ {
            c.push(Where::cmp(col!(logs::level), CmpOp::Ge, v));
        }
        if let Some(v) = l.le_ {
            c.push(Where::cmp(col!(logs::level), CmpOp::Le, v));
        }
    }
    if let Some(t) = &f.timestamp {
        if let Some(v) = &t.before_ {
            c.push(Where::cmp(col!(logs::timestamp), CmpOp::Le, naive(v)));
        }
        if let Some(v) = &t.after_ {
            c.push(Where::cmp(col!(logs::timestamp), CmpOp::Ge, naive(v)));
        }
    }
    if let Some(IdFilter { any_: Some(v), .. }) = &f.flow_run_id {
        c.push(Where::is_in(col!(logs::flow_run_id), ids(v)));
    }
    nullable_id_conds(&mut c, &f.task_run_id, col!(logs::task_run_id));
    if let Some(TextFilter { query: Some(q) }) = &f.text {
        let q = q.trim();
        if !q.is_empty() {
            let pat = format!("%{}%", escape_like(&q.to_lowercase()));
            c.push(Where::ilike(col!(logs::message), pat, true));
        }
    }
    combine(f.operator, c)
}

/// Flow runs matching the run filter and the related flow, deployment, pool and task-run
/// filters.
pub fn flow_runs_related(r: &Related) -> Where {
    let mut c = Vec::new();
    if let Some(d) = &r.deployments {
        c.push(Where::in_select(
            col!(flow_runs::deployment_id),
            col!(deployments::id),
            deployment(d),
        ));
    }
    let queues = r.work_pool_queues.as_ref().or(r.work_queues.as_ref());
    if r.work_pools.is_some() || queues.is_some() {
        c.push(runs_in_pools(r.work_pools.as_ref(), queues));
    }
    if let Some(f) = &r.flow_runs {
        c.push(flow_run(f));
    }
    if let Some(f) = &r.flows {
        c.push(Where::in_select(
            col!(flow_runs::flow_id),
            col!(flows::id),
            flow(f),
        ));
    }
    if let Some(f) = &r.task_runs {
        c.push(Where::in_select(
            col!(flow_runs::id),
            col!(task_runs::flow_run_id),
            Where::all(vec![
                task_run(f),
                Where::not_null(col!(task_runs::flow_run_id)),
            ]),
        ));
    }
    Where::all(c)
}

/// Task runs matching the task filter and the related flow-run and flow filters.
pub fn task_runs_related(r: &Related) -> Where {
    let mut c = Vec::new();
    if let Some(f) = &r.task_runs {
        c.push(task_run(f));
    }
    if r.flow_runs.is_some() || r.flows.is_some() || r.deployments.is_some() {
        let only_runs = Related {
            flow_runs: r.flow_runs.clone(),
            flows: r.flows.clone(),
            deployments: r.deployments.clone(),
            ..Default::default()
        };
        c.push(Where::in_select(
            col!(task_runs::flow_run_id),
            col!(flow_runs::id),
            flow_runs_related(&only_runs),
        ));
    }
    Where::all(c)
}

/// Flows matching the flow filter and having a matching flow run / task run / deployment.
pub fn flows_related(r: &Related) -> Where {
    let mut c = Vec::new();
    // One deployment of the flow matches the deployment and pool filters together.
    if r.deployments.is_some() || r.work_pools.is_some() {
        let mut dc = Vec::new();
        if let Some(d) = &r.deployments {
            dc.push(deployment(d));
        }
        if let Some(p) = &r.work_pools {
            dc.push(Where::in_select(
                col!(deployments::work_queue_id),
                col!(work_queues::id),
                queues_in_pools(Some(p), None),
            ));
        }
        c.push(Where::in_select(
            col!(flows::id),
            col!(deployments::flow_id),
            Where::all(dc),
        ));
    }
    if let Some(f) = &r.flows {
        c.push(flow(f));
    }
    if let Some(runs) = runs_part(r) {
        c.push(Where::in_select(
            col!(flows::id),
            col!(flow_runs::flow_id),
            flow_runs_related(&runs),
        ));
    }
    Where::all(c)
}

/// The flow-run and task-run parts of `r` alone (what a flow or deployment filter matches
/// through their runs), when it has any.
pub(super) fn runs_part(r: &Related) -> Option<Related> {
    (r.flow_runs.is_some() || r.task_runs.is_some()).then(|| Related {
        flow_runs: r.flow_runs.clone(),
        task_runs: r.task_runs.clone(),
        ..Default::default()
    })
}
