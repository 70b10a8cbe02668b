//! History groups: flow or task runs counted per interval and state by the database, so a history
//! over a week of a busy installation reads a few hundred groups, never the runs themselves.
//!
//! A run goes to interval `(expected_start - start) / step` in whole microseconds, computed from
//! each backend's exact timestamp (PostgreSQL's numeric epoch; SQLite's text, whole seconds plus
//! the fraction's digits), so a run on a boundary lands where Rust's arithmetic would put it.
//! Estimated run time and lateness follow `runs::answers::Clock::estimates`: a RUNNING run has
//! run since its state's timestamp; a run not started yet (SCHEDULED, PENDING, no state) is late
//! by now minus its expected start; a started run by its start minus its expected start.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::expression::SqlLiteral;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::Queryable;

/// What a history counts: expected starts in [start, end), intervals of `step_us`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub step_us: i64,
    /// The time estimates are made at.
    pub now: NaiveDateTime,
}

/// The runs of one state in one interval.
#[derive(Debug, Clone, Queryable)]
pub struct HistoryGroup {
    /// Index of the interval from the window's start.
    pub interval: i64,
    pub state_type: Option<String>,
    pub state_name: Option<String>,
    pub count: i64,
    /// Seconds, summed.
    pub run_time: f64,
    /// Seconds, summed.
    pub lateness: f64,
}

pub type HistoryGroupSql = (
    BigInt,
    Nullable<Text>,
    Nullable<Text>,
    BigInt,
    Double,
    Double,
);

/// Microseconds since the epoch of `t`.
pub(crate) fn micros_of(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

/// Microseconds since the epoch of timestamp column `col`, in the backend's SQL.
pub(crate) fn micros_sql(pg: bool, col: &str) -> String {
    if pg {
        format!("CAST(extract(epoch FROM {col}) * 1000000 AS BIGINT)")
    } else {
        // Stored as 'YYYY-MM-DD HH:MM:SS[.f…]': whole seconds, then the fraction's first six
        // digits, right-padded.
        format!(
            "(CAST(strftime('%s', {col}) AS INTEGER) * 1000000 \
             + CAST(substr(substr({col}, 21) || '000000', 1, 6) AS INTEGER))"
        )
    }
}

/// The select list of a history over `table` (`flow_runs` or `task_runs`), grouped by its first
/// three columns ([`group_by`]). Only numbers computed here are spliced in.
pub fn select(table: &str, pg: bool, w: &Window) -> SqlLiteral<HistoryGroupSql> {
    let expected = micros_sql(pg, &format!("{table}.expected_start_time"));
    let started = micros_sql(pg, &format!("{table}.start_time"));
    let state_at = micros_sql(pg, &format!("{table}.state_timestamp"));
    let (start, step, now) = (micros_of(&w.start), w.step_us.max(1), micros_of(&w.now));
    let max = if pg { "greatest" } else { "max" };
    let secs = |us: String| format!("CAST({us} AS DOUBLE PRECISION) / 1000000.0");
    let run_time = format!(
        "{table}.total_run_time + CASE WHEN {table}.state_type = 'RUNNING' \
         AND {table}.state_timestamp IS NOT NULL THEN {} ELSE 0 END",
        secs(format!("{now} - {state_at}"))
    );
    let lateness = format!(
        "CASE WHEN {table}.start_time IS NOT NULL THEN {} \
         WHEN {table}.state_type IS NULL OR {table}.state_type IN ('SCHEDULED', 'PENDING') \
         THEN {} ELSE 0 END",
        secs(format!("{max}({started} - {expected}, 0)")),
        secs(format!("{max}({now} - {expected}, 0)")),
    );
    sql(&format!(
        "({expected} - {start}) / {step}, {table}.state_type, {table}.state_name, count(*), \
         CAST(sum({run_time}) AS DOUBLE PRECISION), CAST(sum({lateness}) AS DOUBLE PRECISION)"
    ))
}

/// GROUP BY the interval and the state (the select list's first three columns).
pub fn group_by() -> SqlLiteral<BigInt> {
    sql("1, 2, 3")
}

/// The select list of runs counted per interval of `step_us` from `start` of timestamp column
/// `col` and per state type: `(interval, state_type, count)`, grouped by [`group_by_interval`].
pub fn interval_counts(
    pg: bool,
    col: &str,
    start: &NaiveDateTime,
    step_us: i64,
) -> SqlLiteral<(BigInt, Nullable<Text>, BigInt)> {
    let at = micros_sql(pg, col);
    let (start, step) = (micros_of(start), step_us.max(1));
    let table = col.split('.').next().unwrap_or(col);
    sql(&format!(
        "({at} - {start}) / {step}, {table}.state_type, count(*)"
    ))
}

/// GROUP BY the interval and the state type ([`interval_counts`]' first two columns).
pub fn group_by_interval() -> SqlLiteral<BigInt> {
    sql("1, 2")
}
