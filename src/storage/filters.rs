//! Filters (API.md §3): the request shapes of `/…/filter`, `/…/count` and `/…/paginate`, and
//! their translation into SQL conditions. Each condition builder is written once and expanded
//! for both backends by `impl_filter_sql!`, so both are type-checked by the compiler.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use serde::Deserialize;
use uuid::Uuid;

use super::schema::{deployments, flow_runs, flows, logs, task_runs, work_pools, work_queues};

/// A boxed SQL condition on table `T` for backend `DB`.
pub type Cond<T, DB> = Box<dyn BoxableExpression<T, DB, SqlType = Bool>>;

diesel::define_sql_function! {
    /// Lower-cases text (both backends have it); used for case-insensitive `like_`.
    fn lower(x: Text) -> Text;
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum Operator {
    #[default]
    #[serde(rename = "and_")]
    And,
    #[serde(rename = "or_")]
    Or,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdFilter {
    pub any_: Option<Vec<Uuid>>,
    pub not_any_: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NameFilter {
    pub any_: Option<Vec<String>>,
    pub not_any_: Option<Vec<String>>,
    pub like_: Option<String>,
    pub startswith_: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TagsFilter {
    pub all_: Option<Vec<String>>,
    pub any_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimeFilter {
    #[serde(with = "crate::time::opt")]
    pub before_: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::opt")]
    pub after_: Option<DateTime<Utc>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NullableIdFilter {
    pub any_: Option<Vec<Uuid>>,
    pub not_any_: Option<Vec<Uuid>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StringsFilter {
    pub any_: Option<Vec<String>>,
    pub not_any_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StateFilter {
    pub operator: Operator,
    #[serde(rename = "type")]
    pub state_type: Option<StringsFilter>,
    pub name: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExistsFilter {
    pub exists_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IsNullFilter {
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatedByFilter {
    pub id_: Option<Vec<Uuid>>,
    pub type_: Option<Vec<String>>,
    pub is_null_: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlowFilter {
    pub operator: Operator,
    pub id: Option<IdFilter>,
    pub deployment: Option<IsNullFilter>,
    pub name: Option<NameFilter>,
    pub tags: Option<TagsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlowRunFilter {
    pub operator: Operator,
    pub id: Option<IdFilter>,
    pub name: Option<NameFilter>,
    pub tags: Option<TagsFilter>,
    pub deployment_id: Option<NullableIdFilter>,
    pub work_queue_name: Option<StringsFilter>,
    pub state: Option<StateFilter>,
    pub flow_version: Option<StringsFilter>,
    pub start_time: Option<TimeFilter>,
    pub end_time: Option<TimeFilter>,
    pub expected_start_time: Option<TimeFilter>,
    pub next_scheduled_start_time: Option<TimeFilter>,
    pub parent_flow_run_id: Option<IdFilter>,
    pub parent_task_run_id: Option<NullableIdFilter>,
    pub idempotency_key: Option<StringsFilter>,
    pub created_by: Option<CreatedByFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskRunFilter {
    pub operator: Operator,
    pub id: Option<IdFilter>,
    pub name: Option<NameFilter>,
    pub tags: Option<TagsFilter>,
    pub state: Option<StateFilter>,
    pub start_time: Option<TimeFilter>,
    pub end_time: Option<TimeFilter>,
    pub expected_start_time: Option<TimeFilter>,
    pub subflow_runs: Option<ExistsFilter>,
    pub flow_run_id: Option<NullableIdFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LevelFilter {
    pub ge_: Option<i32>,
    pub le_: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TextFilter {
    pub query: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogFilter {
    pub operator: Operator,
    pub level: Option<LevelFilter>,
    pub timestamp: Option<TimeFilter>,
    pub flow_run_id: Option<IdFilter>,
    pub task_run_id: Option<NullableIdFilter>,
    pub text: Option<TextFilter>,
}

/// The sub-filters every run/flow query may combine. Filters of objects Orrery does not store
/// yet (deployments, work pools, work queues) are kept: when present they require a related
/// object to exist, exactly as Prefect's join does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Related {
    pub flows: Option<FlowFilter>,
    pub flow_runs: Option<FlowRunFilter>,
    pub task_runs: Option<TaskRunFilter>,
    pub deployments: Option<super::deployments::DeploymentFilter>,
    pub work_pools: Option<super::work_pools::WorkPoolFilter>,
    pub work_pool_queues: Option<super::work_pools::WorkQueueFilter>,
    pub work_queues: Option<super::work_pools::WorkQueueFilter>,
}

fn ids(v: &[Uuid]) -> Vec<String> {
    v.iter().map(|u| u.to_string()).collect()
}

fn naive(t: &DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// `%"tag"%` with LIKE's own wildcards escaped: matches one element of a compact JSON array.
pub fn tag_pattern(tag: &str) -> String {
    let json = serde_json::to_string(tag).unwrap_or_default();
    format!("%{}%", escape_like(&json))
}

/// `s` with LIKE's wildcards and its escape character escaped, for `LIKE … ESCAPE '\'`.
pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Condition builders per backend.
pub trait FilterSql: diesel::backend::Backend + Sized + 'static {
    fn flow(f: &FlowFilter) -> Cond<flows::table, Self>;
    fn flow_run(f: &FlowRunFilter) -> Cond<flow_runs::table, Self>;
    fn task_run(f: &TaskRunFilter) -> Cond<task_runs::table, Self>;
    fn log(f: &LogFilter) -> Cond<logs::table, Self>;
    /// Flow runs matching the run filter and the related flow and task-run filters.
    fn flow_runs_related(r: &Related) -> Cond<flow_runs::table, Self>;
    /// Task runs matching the task filter and the related flow-run and flow filters.
    fn task_runs_related(r: &Related) -> Cond<task_runs::table, Self>;
    /// Flows matching the flow filter and having a matching flow run / task run.
    fn flows_related(r: &Related) -> Cond<flows::table, Self>;
    fn deployment(f: &super::deployments::DeploymentFilter) -> Cond<deployments::table, Self>;
    /// Work queues matching the queue filter and in a pool matching the pool filter.
    fn queues_in_pools(
        pools: Option<&super::work_pools::WorkPoolFilter>,
        queues: Option<&super::work_pools::WorkQueueFilter>,
    ) -> Cond<work_queues::table, Self>;
    /// Deployments matching the deployment filter, with a matching flow, a matching flow run
    /// (and task run), and a queue matching the queue filter in a pool matching the pool
    /// filter (the reference's `_apply_deployment_filters`).
    fn deployments_related(r: &Related) -> Cond<deployments::table, Self>;
    /// Flow runs whose queue is in a matching pool / is a matching queue.
    fn runs_in_pools(
        pools: Option<&super::work_pools::WorkPoolFilter>,
        queues: Option<&super::work_pools::WorkQueueFilter>,
    ) -> Cond<flow_runs::table, Self>;
}

/// Combines conditions with the filter's operator; no conditions means "true". Shared with the
/// other resources' filters (`use crate::storage::filters::combine;`).
macro_rules! combine {
    ($db:ty, $table:ty, $op:expr, $conds:expr) => {{
        use $crate::storage::filters::{Cond, Operator};
        let conds: Vec<Cond<$table, $db>> = $conds;
        let mut it = conds.into_iter();
        match it.next() {
            None => {
                Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("1=1")) as Cond<$table, $db>
            }
            Some(first) => it.fold(first, |acc, c| match $op {
                Operator::And => Box::new(acc.and(c)) as Cond<$table, $db>,
                Operator::Or => Box::new(acc.or(c)) as Cond<$table, $db>,
            }),
        }
    }};
}
pub(crate) use combine;

/// Pushes the conditions of a `TimeFilter` on a nullable timestamp column.
macro_rules! time_conds {
    ($db:ty, $table:ty, $out:ident, $f:expr, $col:expr) => {
        if let Some(f) = $f {
            if let Some(t) = &f.before_ {
                $out.push(Box::new($col.le(naive(t)).assume_not_null()));
            }
            if let Some(t) = &f.after_ {
                $out.push(Box::new($col.ge(naive(t)).assume_not_null()));
            }
            match f.is_null_ {
                Some(true) => $out.push(Box::new($col.is_null())),
                Some(false) => $out.push(Box::new($col.is_not_null())),
                None => {}
            }
        }
    };
}

macro_rules! name_conds {
    ($db:ty, $out:ident, $f:expr, $col:expr) => {
        if let Some(f) = $f {
            if let Some(v) = &f.any_ {
                $out.push(Box::new($col.eq_any(v.clone())));
            }
            if let Some(v) = &f.not_any_ {
                $out.push(Box::new($col.ne_all(v.clone())));
            }
            if let Some(like) = &f.like_ {
                $out.push(Box::new(
                    lower($col).like(format!("%{}%", like.to_lowercase())),
                ));
            }
            if let Some(prefixes) = &f.startswith_ {
                let mut any: Vec<Cond<_, $db>> = Vec::new();
                for p in prefixes {
                    any.push(Box::new(
                        $col.like(format!("{}%", escape_like(p))).escape('\\'),
                    ));
                }
                $out.push(combine!($db, _, Operator::Or, any));
            }
        }
    };
}

macro_rules! tags_conds {
    ($db:ty, $table:ty, $out:ident, $f:expr, $col:expr) => {
        if let Some(f) = $f {
            if let Some(all) = &f.all_ {
                for t in all {
                    $out.push(Box::new($col.like(tag_pattern(t)).escape('\\')));
                }
            }
            if let Some(any) = &f.any_ {
                let conds: Vec<Cond<$table, $db>> = any
                    .iter()
                    .map(|t| Box::new($col.like(tag_pattern(t)).escape('\\')) as Cond<$table, $db>)
                    .collect();
                if conds.is_empty() {
                    $out.push(Box::new(diesel::dsl::sql::<Bool>("1=0")));
                } else {
                    $out.push(combine!($db, $table, Operator::Or, conds));
                }
            }
            match f.is_null_ {
                Some(true) => $out.push(Box::new($col.eq("[]"))),
                Some(false) => $out.push(Box::new($col.ne("[]"))),
                None => {}
            }
        }
    };
}

macro_rules! strings_conds {
    ($out:ident, $f:expr, $col:expr) => {
        if let Some(f) = $f {
            if let Some(v) = &f.any_ {
                $out.push(Box::new($col.eq_any(v.clone()).assume_not_null()));
            }
            if let Some(v) = &f.not_any_ {
                $out.push(Box::new($col.ne_all(v.clone()).assume_not_null()));
            }
            match f.is_null_ {
                Some(true) => $out.push(Box::new($col.is_null())),
                Some(false) => $out.push(Box::new($col.is_not_null())),
                None => {}
            }
        }
    };
}

macro_rules! state_conds {
    ($db:ty, $table:ty, $out:ident, $f:expr, $type_col:expr, $name_col:expr) => {
        if let Some(s) = $f {
            let mut inner: Vec<Cond<$table, $db>> = Vec::new();
            strings_conds!(inner, &s.state_type, $type_col);
            strings_conds!(inner, &s.name, $name_col);
            if !inner.is_empty() {
                $out.push(combine!($db, $table, s.operator, inner));
            }
        }
    };
}

macro_rules! impl_filter_sql {
    ($db:ty) => {
        impl FilterSql for $db {
            fn flow(f: &FlowFilter) -> Cond<flows::table, Self> {
                let mut c: Vec<Cond<flows::table, $db>> = Vec::new();
                if let Some(id) = &f.id {
                    if let Some(v) = &id.any_ {
                        c.push(Box::new(flows::id.eq_any(ids(v))));
                    }
                    if let Some(v) = &id.not_any_ {
                        c.push(Box::new(flows::id.ne_all(ids(v))));
                    }
                }
                name_conds!($db, c, &f.name, flows::name);
                tags_conds!($db, flows::table, c, &f.tags, flows::tags);
                if let Some(is_null) = f.deployment.as_ref().and_then(|d| d.is_null_) {
                    let with = deployments::table
                        .select(deployments::flow_id)
                        .into_boxed::<$db>();
                    if is_null {
                        c.push(Box::new(diesel::dsl::not(flows::id.eq_any(with))));
                    } else {
                        c.push(Box::new(flows::id.eq_any(with)));
                    }
                }
                combine!($db, flows::table, f.operator, c)
            }

            fn flow_run(f: &FlowRunFilter) -> Cond<flow_runs::table, Self> {
                let mut c: Vec<Cond<flow_runs::table, $db>> = Vec::new();
                if let Some(id) = &f.id {
                    if let Some(v) = &id.any_ {
                        c.push(Box::new(flow_runs::id.eq_any(ids(v))));
                    }
                    if let Some(v) = &id.not_any_ {
                        c.push(Box::new(flow_runs::id.ne_all(ids(v))));
                    }
                }
                name_conds!($db, c, &f.name, flow_runs::name);
                tags_conds!($db, flow_runs::table, c, &f.tags, flow_runs::tags);
                if let Some(d) = &f.deployment_id {
                    let s = StringsFilter {
                        any_: d.any_.as_deref().map(ids),
                        not_any_: d.not_any_.as_deref().map(ids),
                        is_null_: d.is_null_,
                    };
                    strings_conds!(c, &Some(s), flow_runs::deployment_id);
                }
                strings_conds!(c, &f.work_queue_name, flow_runs::work_queue_name);
                state_conds!(
                    $db,
                    flow_runs::table,
                    c,
                    &f.state,
                    flow_runs::state_type,
                    flow_runs::state_name
                );
                strings_conds!(c, &f.flow_version, flow_runs::flow_version);
                time_conds!(
                    $db,
                    flow_runs::table,
                    c,
                    &f.start_time,
                    flow_runs::start_time
                );
                time_conds!($db, flow_runs::table, c, &f.end_time, flow_runs::end_time);
                time_conds!(
                    $db,
                    flow_runs::table,
                    c,
                    &f.expected_start_time,
                    flow_runs::expected_start_time
                );
                time_conds!(
                    $db,
                    flow_runs::table,
                    c,
                    &f.next_scheduled_start_time,
                    flow_runs::next_scheduled_start_time
                );
                if let Some(IdFilter {
                    any_: Some(parents),
                    ..
                }) = &f.parent_flow_run_id
                {
                    let sub = task_runs::table
                        .filter(task_runs::flow_run_id.eq_any(ids(parents)))
                        .select(task_runs::id.nullable())
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        flow_runs::parent_task_run_id.eq_any(sub).assume_not_null(),
                    ));
                }
                if let Some(p) = &f.parent_task_run_id {
                    let s = StringsFilter {
                        any_: p.any_.as_deref().map(ids),
                        not_any_: p.not_any_.as_deref().map(ids),
                        is_null_: p.is_null_,
                    };
                    strings_conds!(c, &Some(s), flow_runs::parent_task_run_id);
                }
                strings_conds!(c, &f.idempotency_key, flow_runs::idempotency_key);
                if let Some(cb) = &f.created_by {
                    if let Some(types) = &cb.type_ {
                        let conds: Vec<Cond<flow_runs::table, $db>> = types
                            .iter()
                            .map(|t| {
                                let pat = format!(
                                    "%\"type\":{}%",
                                    escape_like(&serde_json::to_string(t).unwrap_or_default())
                                );
                                Box::new(
                                    flow_runs::created_by
                                        .like(pat)
                                        .escape('\\')
                                        .assume_not_null(),
                                ) as Cond<flow_runs::table, $db>
                            })
                            .collect();
                        c.push(combine!($db, flow_runs::table, Operator::Or, conds));
                    }
                    if let Some(ids_) = &cb.id_ {
                        let conds: Vec<Cond<flow_runs::table, $db>> = ids_
                            .iter()
                            .map(|i| {
                                let pat = format!("%\"id\":\"{i}\"%");
                                Box::new(flow_runs::created_by.like(pat).assume_not_null())
                                    as Cond<flow_runs::table, $db>
                            })
                            .collect();
                        c.push(combine!($db, flow_runs::table, Operator::Or, conds));
                    }
                    match cb.is_null_ {
                        Some(true) => c.push(Box::new(flow_runs::created_by.is_null())),
                        Some(false) => c.push(Box::new(flow_runs::created_by.is_not_null())),
                        None => {}
                    }
                }
                combine!($db, flow_runs::table, f.operator, c)
            }

            fn task_run(f: &TaskRunFilter) -> Cond<task_runs::table, Self> {
                let mut c: Vec<Cond<task_runs::table, $db>> = Vec::new();
                if let Some(id) = &f.id {
                    if let Some(v) = &id.any_ {
                        c.push(Box::new(task_runs::id.eq_any(ids(v))));
                    }
                    if let Some(v) = &id.not_any_ {
                        c.push(Box::new(task_runs::id.ne_all(ids(v))));
                    }
                }
                name_conds!($db, c, &f.name, task_runs::name);
                tags_conds!($db, task_runs::table, c, &f.tags, task_runs::tags);
                state_conds!(
                    $db,
                    task_runs::table,
                    c,
                    &f.state,
                    task_runs::state_type,
                    task_runs::state_name
                );
                time_conds!(
                    $db,
                    task_runs::table,
                    c,
                    &f.start_time,
                    task_runs::start_time
                );
                time_conds!($db, task_runs::table, c, &f.end_time, task_runs::end_time);
                time_conds!(
                    $db,
                    task_runs::table,
                    c,
                    &f.expected_start_time,
                    task_runs::expected_start_time
                );
                if let Some(ExistsFilter {
                    exists_: Some(exists),
                }) = &f.subflow_runs
                {
                    let sub = flow_runs::table
                        .filter(flow_runs::parent_task_run_id.is_not_null())
                        .select(flow_runs::parent_task_run_id)
                        .into_boxed::<$db>();
                    if *exists {
                        c.push(Box::new(
                            task_runs::id.nullable().eq_any(sub).assume_not_null(),
                        ));
                    } else {
                        c.push(Box::new(diesel::dsl::not(
                            task_runs::id.nullable().eq_any(sub).assume_not_null(),
                        )));
                    }
                }
                if let Some(p) = &f.flow_run_id {
                    let s = StringsFilter {
                        any_: p.any_.as_deref().map(ids),
                        not_any_: p.not_any_.as_deref().map(ids),
                        is_null_: p.is_null_,
                    };
                    strings_conds!(c, &Some(s), task_runs::flow_run_id);
                }
                combine!($db, task_runs::table, f.operator, c)
            }

            fn log(f: &LogFilter) -> Cond<logs::table, Self> {
                let mut c: Vec<Cond<logs::table, $db>> = Vec::new();
                if let Some(l) = &f.level {
                    if let Some(v) = l.ge_ {
                        c.push(Box::new(logs::level.ge(v)));
                    }
                    if let Some(v) = l.le_ {
                        c.push(Box::new(logs::level.le(v)));
                    }
                }
                if let Some(t) = &f.timestamp {
                    if let Some(v) = &t.before_ {
                        c.push(Box::new(logs::timestamp.le(naive(v))));
                    }
                    if let Some(v) = &t.after_ {
                        c.push(Box::new(logs::timestamp.ge(naive(v))));
                    }
                }
                if let Some(IdFilter { any_: Some(v), .. }) = &f.flow_run_id {
                    c.push(Box::new(logs::flow_run_id.eq_any(ids(v)).assume_not_null()));
                }
                if let Some(p) = &f.task_run_id {
                    let s = StringsFilter {
                        any_: p.any_.as_deref().map(ids),
                        not_any_: p.not_any_.as_deref().map(ids),
                        is_null_: p.is_null_,
                    };
                    strings_conds!(c, &Some(s), logs::task_run_id);
                }
                if let Some(TextFilter { query: Some(q) }) = &f.text {
                    let q = q.trim();
                    if !q.is_empty() {
                        let pat = format!("%{}%", escape_like(&q.to_lowercase()));
                        c.push(Box::new(lower(logs::message).like(pat).escape('\\')));
                    }
                }
                combine!($db, logs::table, f.operator, c)
            }

            fn deployment(
                f: &super::deployments::DeploymentFilter,
            ) -> Cond<deployments::table, Self> {
                let mut c: Vec<Cond<deployments::table, $db>> = Vec::new();
                if let Some(id) = &f.id {
                    if let Some(v) = &id.any_ {
                        c.push(Box::new(deployments::id.eq_any(ids(v))));
                    }
                    if let Some(v) = &id.not_any_ {
                        c.push(Box::new(deployments::id.ne_all(ids(v))));
                    }
                }
                name_conds!($db, c, &f.name, deployments::name);
                if let Some(l) = f
                    .flow_or_deployment_name
                    .as_ref()
                    .and_then(|n| n.like_.as_ref())
                {
                    let pat = format!("%{}%", l.to_lowercase());
                    let by_flow = flows::table
                        .filter(lower(flows::name).like(pat.clone()))
                        .select(flows::id)
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        lower(deployments::name)
                            .like(pat)
                            .or(deployments::flow_id.eq_any(by_flow)),
                    ));
                }
                if let Some(p) = f.paused.as_ref().and_then(|p| p.eq_) {
                    c.push(Box::new(deployments::paused.eq(p)));
                }
                tags_conds!($db, deployments::table, c, &f.tags, deployments::tags);
                strings_conds!(c, &f.work_queue_name, deployments::work_queue_name);
                combine!($db, deployments::table, Operator::And, c)
            }

            fn queues_in_pools(
                pools: Option<&super::work_pools::WorkPoolFilter>,
                queues: Option<&super::work_pools::WorkQueueFilter>,
            ) -> Cond<work_queues::table, Self> {
                let mut qc: Vec<Cond<work_queues::table, $db>> = Vec::new();
                if let Some(q) = queues {
                    if let Some(v) = q.id.as_ref().and_then(|i| i.any_.as_ref()) {
                        qc.push(Box::new(work_queues::id.eq_any(ids(v))));
                    }
                    if let Some(v) = q.name.as_ref().and_then(|n| n.any_.as_ref()) {
                        qc.push(Box::new(work_queues::name.eq_any(v.clone())));
                    }
                }
                if let Some(p) = pools {
                    let mut pc: Vec<Cond<work_pools::table, $db>> = Vec::new();
                    if let Some(v) = p.id.as_ref().and_then(|i| i.any_.as_ref()) {
                        pc.push(Box::new(work_pools::id.eq_any(ids(v))));
                    }
                    if let Some(v) = p.name.as_ref().and_then(|n| n.any_.as_ref()) {
                        pc.push(Box::new(work_pools::name.eq_any(v.clone())));
                    }
                    if let Some(v) = p.pool_type.as_ref().and_then(|n| n.any_.as_ref()) {
                        pc.push(Box::new(work_pools::pool_type.eq_any(v.clone())));
                    }
                    let pool_ids = work_pools::table
                        .filter(combine!($db, work_pools::table, Operator::And, pc))
                        .select(work_pools::id)
                        .into_boxed::<$db>();
                    qc.push(Box::new(work_queues::work_pool_id.eq_any(pool_ids)));
                }
                combine!($db, work_queues::table, Operator::And, qc)
            }

            fn runs_in_pools(
                pools: Option<&super::work_pools::WorkPoolFilter>,
                queues: Option<&super::work_pools::WorkQueueFilter>,
            ) -> Cond<flow_runs::table, Self> {
                let queue_ids = work_queues::table
                    .filter(<$db as FilterSql>::queues_in_pools(pools, queues))
                    .select(work_queues::id.nullable())
                    .into_boxed::<$db>();
                Box::new(flow_runs::work_queue_id.eq_any(queue_ids).assume_not_null())
            }

            fn deployments_related(r: &Related) -> Cond<deployments::table, Self> {
                let mut c: Vec<Cond<deployments::table, $db>> = Vec::new();
                if let Some(d) = &r.deployments {
                    c.push(<$db as FilterSql>::deployment(d));
                }
                if let Some(f) = &r.flows {
                    let sub = flows::table
                        .filter(<$db as FilterSql>::flow(f))
                        .select(flows::id)
                        .into_boxed::<$db>();
                    c.push(Box::new(deployments::flow_id.eq_any(sub)));
                }
                if r.flow_runs.is_some() || r.task_runs.is_some() {
                    let runs = Related {
                        flow_runs: r.flow_runs.clone(),
                        task_runs: r.task_runs.clone(),
                        ..Default::default()
                    };
                    let sub = flow_runs::table
                        .filter(<$db as FilterSql>::flow_runs_related(&runs))
                        .filter(flow_runs::deployment_id.is_not_null())
                        .select(flow_runs::deployment_id)
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        deployments::id.nullable().eq_any(sub).assume_not_null(),
                    ));
                }
                let queues = r.work_pool_queues.as_ref().or(r.work_queues.as_ref());
                if r.work_pools.is_some() || queues.is_some() {
                    let sub = work_queues::table
                        .filter(<$db as FilterSql>::queues_in_pools(
                            r.work_pools.as_ref(),
                            queues,
                        ))
                        .select(work_queues::id.nullable())
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        deployments::work_queue_id.eq_any(sub).assume_not_null(),
                    ));
                }
                combine!($db, deployments::table, Operator::And, c)
            }

            fn flow_runs_related(r: &Related) -> Cond<flow_runs::table, Self> {
                let mut c: Vec<Cond<flow_runs::table, $db>> = Vec::new();
                if let Some(d) = &r.deployments {
                    let sub = deployments::table
                        .filter(<$db as FilterSql>::deployment(d))
                        .select(deployments::id.nullable())
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        flow_runs::deployment_id.eq_any(sub).assume_not_null(),
                    ));
                }
                let queues = r.work_pool_queues.as_ref().or(r.work_queues.as_ref());
                if r.work_pools.is_some() || queues.is_some() {
                    c.push(<$db as FilterSql>::runs_in_pools(
                        r.work_pools.as_ref(),
                        queues,
                    ));
                }
                if let Some(f) = &r.flow_runs {
                    c.push(<$db as FilterSql>::flow_run(f));
                }
                if let Some(f) = &r.flows {
                    let sub = flows::table
                        .filter(<$db as FilterSql>::flow(f))
                        .select(flows::id)
                        .into_boxed::<$db>();
                    c.push(Box::new(flow_runs::flow_id.eq_any(sub)));
                }
                if let Some(f) = &r.task_runs {
                    let sub = task_runs::table
                        .filter(<$db as FilterSql>::task_run(f))
                        .filter(task_runs::flow_run_id.is_not_null())
                        .select(task_runs::flow_run_id)
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        flow_runs::id.nullable().eq_any(sub).assume_not_null(),
                    ));
                }
                combine!($db, flow_runs::table, Operator::And, c)
            }

            fn task_runs_related(r: &Related) -> Cond<task_runs::table, Self> {
                let mut c: Vec<Cond<task_runs::table, $db>> = Vec::new();
                if let Some(f) = &r.task_runs {
                    c.push(<$db as FilterSql>::task_run(f));
                }
                if r.flow_runs.is_some() || r.flows.is_some() || r.deployments.is_some() {
                    let only_runs = Related {
                        flow_runs: r.flow_runs.clone(),
                        flows: r.flows.clone(),
                        deployments: r.deployments.clone(),
                        ..Default::default()
                    };
                    let sub = flow_runs::table
                        .filter(<$db as FilterSql>::flow_runs_related(&only_runs))
                        .select(flow_runs::id.nullable())
                        .into_boxed::<$db>();
                    c.push(Box::new(
                        task_runs::flow_run_id.eq_any(sub).assume_not_null(),
                    ));
                }
                combine!($db, task_runs::table, Operator::And, c)
            }

            fn flows_related(r: &Related) -> Cond<flows::table, Self> {
                let mut c: Vec<Cond<flows::table, $db>> = Vec::new();
                // One deployment of the flow matches the deployment and pool filters together.
                if r.deployments.is_some() || r.work_pools.is_some() {
                    let mut dc: Vec<Cond<deployments::table, $db>> = Vec::new();
                    if let Some(d) = &r.deployments {
                        dc.push(<$db as FilterSql>::deployment(d));
                    }
                    if let Some(p) = &r.work_pools {
                        let queue_ids = work_queues::table
                            .filter(<$db as FilterSql>::queues_in_pools(Some(p), None))
                            .select(work_queues::id.nullable())
                            .into_boxed::<$db>();
                        dc.push(Box::new(
                            deployments::work_queue_id
                                .eq_any(queue_ids)
                                .assume_not_null(),
                        ));
                    }
                    let sub = deployments::table
                        .filter(combine!($db, deployments::table, Operator::And, dc))
                        .select(deployments::flow_id)
                        .into_boxed::<$db>();
                    c.push(Box::new(flows::id.eq_any(sub)));
                }
                if let Some(f) = &r.flows {
                    c.push(<$db as FilterSql>::flow(f));
                }
                if r.flow_runs.is_some() || r.task_runs.is_some() {
                    let runs = Related {
                        flow_runs: r.flow_runs.clone(),
                        task_runs: r.task_runs.clone(),
                        ..Default::default()
                    };
                    let sub = flow_runs::table
                        .filter(<$db as FilterSql>::flow_runs_related(&runs))
                        .select(flow_runs::flow_id)
                        .into_boxed::<$db>();
                    c.push(Box::new(flows::id.eq_any(sub)));
                }
                combine!($db, flows::table, Operator::And, c)
            }
        }
    };
}

impl_filter_sql!(diesel::pg::Pg);
impl_filter_sql!(diesel::sqlite::Sqlite);

/// The backend of a connection, for calling [`FilterSql`] from a `db_run!` body.
pub fn backend<C: diesel_async::AsyncConnection>(_c: &C) -> std::marker::PhantomData<C::Backend> {
    std::marker::PhantomData
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_patterns_match_whole_elements_only() {
        assert_eq!(tag_pattern("db"), "%\"db\"%");
        assert_eq!(tag_pattern("50%_off"), "%\"50\\%\\_off\"%");
    }

    #[test]
    fn filters_accept_explicit_nulls() {
        let r: Related = serde_json::from_str(
            r#"{"flows":null,"flow_runs":{"parent_task_run_id":{"any_":["9f2a0b8e-5d1c-4c7e-8f00-000000000001"]}},"task_runs":null,"deployments":null}"#,
        )
        .expect("parses");
        assert!(r.flow_runs.is_some() && r.flows.is_none() && r.deployments.is_none());
    }
}

/// Sorts of `/flows/filter` (and deployments later).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowSort {
    CreatedDesc,
    UpdatedDesc,
    #[default]
    NameAsc,
    NameDesc,
}

/// Sorts of `/flow_runs/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowRunSort {
    #[default]
    IdDesc,
    StartTimeAsc,
    StartTimeDesc,
    ExpectedStartTimeAsc,
    ExpectedStartTimeDesc,
    NameAsc,
    NameDesc,
    NextScheduledStartTimeAsc,
    EndTimeDesc,
}

/// Sorts of `/task_runs/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskRunSort {
    #[default]
    IdDesc,
    ExpectedStartTimeAsc,
    ExpectedStartTimeDesc,
    NameAsc,
    NameDesc,
    NextScheduledStartTimeAsc,
    EndTimeDesc,
    DurationDesc,
    DurationAsc,
}

/// Sorts of `/logs/filter`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogSort {
    #[default]
    TimestampAsc,
    TimestampDesc,
}

/// Limit and offset of a list query, already validated.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// Page `number` (from 1) of `limit` rows, as the `/paginate` routes count; a number too
    /// large to reach gives an offset past every row instead of overflowing.
    pub fn numbered(number: i64, limit: i64) -> Page {
        Page {
            limit,
            offset: number.saturating_sub(1).max(0).saturating_mul(limit),
        }
    }
}
