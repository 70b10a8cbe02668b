//! Reading events back: a page of a filter's events, their total, and their counts by name,
//! resource or time bucket (Prefect's `prefect/server/events/storage/database.py` and
//! `counting.py`). Totals and counts by name or time read `event_counts` for the window's whole
//! hours and only the events of the partial hours at its ends.

use std::collections::HashMap;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::dsl::{count_star, sql};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::counts::{hour_at_or_after, hour_of};
use super::EventRow;
use crate::db_run;
use crate::query::events::{EventFilter, Order};
use crate::storage::filters::events::{self as build, Scope};
use crate::storage::history::{micros_of, micros_sql};
use crate::storage::schema::{event_counts, events};
use crate::storage::{Conn, StorageResult};

/// Up to `limit` of the events `f` selects in `scope`, from `offset`, in the filter's order.
pub async fn page(
    c: &mut Conn,
    scope: &Scope,
    f: &EventFilter,
    limit: i64,
    offset: i64,
) -> StorageResult<Vec<EventRow>> {
    let cond = build::events(scope, f);
    let rows = db_run!(c, |c| {
        let q = events::table
            .filter(cond)
            .select(EventRow::as_select())
            .limit(limit)
            .offset(offset);
        match f.order() {
            Order::Desc => {
                q.order((events::occurred.desc(), events::id.desc()))
                    .load(c)
                    .await
            }
            Order::Asc => {
                q.order((events::occurred.asc(), events::id.asc()))
                    .load(c)
                    .await
            }
        }
    })?;
    Ok(rows)
}

/// How many events `f` selects in `scope` (resources, with `resource.distinct`).
pub async fn total(c: &mut Conn, scope: &Scope, f: &EventFilter) -> StorageResult<i64> {
    if build::countable_by_hour(f) {
        let hourly = hourly(c, scope, f).await?;
        return Ok(hourly.iter().map(|g| g.count).sum());
    }
    exact_total(c, scope, f).await
}

async fn exact_total(c: &mut Conn, scope: &Scope, f: &EventFilter) -> StorageResult<i64> {
    let distinct = f.distinct();
    let cond = build::events(scope, f);
    let n = db_run!(c, |c| {
        let q = events::table.filter(cond);
        if distinct {
            q.select(diesel::dsl::count(events::resource_id).aggregate_distinct())
                .get_result::<i64>(c)
                .await
        } else {
            q.select(count_star()).get_result::<i64>(c).await
        }
    })?;
    Ok(n)
}

/// What events are counted by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum By {
    Event,
    Resource,
    /// Buckets of `step_us` microseconds from `pivot`; a group's value is its bucket's index.
    Time {
        pivot: NaiveDateTime,
        step_us: i64,
    },
}

/// The events of one value: its label (the latest seen), how many, the first and last.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub value: String,
    pub label: String,
    pub count: i64,
    pub first: NaiveDateTime,
    pub last: NaiveDateTime,
}

type GroupSql = (Text, Text, BigInt, Timestamp, Timestamp);

/// The events `f` selects in `scope`, counted by `by`, one group per value (unordered).
pub async fn count_by(
    c: &mut Conn,
    scope: &Scope,
    f: &EventFilter,
    by: By,
) -> StorageResult<Vec<Group>> {
    let hour_us = 3_600_000_000;
    let hours_do = match by {
        By::Event => true,
        By::Time { pivot, step_us } => step_us % hour_us == 0 && micros_of(&pivot) % hour_us == 0,
        By::Resource => false,
    };
    let groups = if hours_do && build::countable_by_hour(f) && !f.distinct() {
        let hourly = hourly(c, scope, f).await?;
        hourly
            .into_iter()
            .map(|g| match by {
                By::Time { pivot, step_us } => Group {
                    value: bucket_of(&pivot, step_us, &g.first).to_string(),
                    label: String::new(),
                    ..g
                },
                _ => g,
            })
            .collect()
    } else {
        grouped(c, scope, f, by).await?
    };
    Ok(merge(groups))
}

/// Groups of the same value merged; the label of the one seen last wins.
fn merge(groups: Vec<Group>) -> Vec<Group> {
    let mut by_value: HashMap<String, Group> = HashMap::new();
    for g in groups {
        match by_value.get_mut(&g.value) {
            Some(m) => {
                if g.last > m.last {
                    m.label = g.label;
                }
                m.count += g.count;
                m.first = m.first.min(g.first);
                m.last = m.last.max(g.last);
            }
            None => {
                by_value.insert(g.value.clone(), g);
            }
        }
    }
    by_value.into_values().collect()
}

/// The bucket of `t`: whole steps from `pivot`, rounded down.
fn bucket_of(pivot: &NaiveDateTime, step_us: i64, t: &NaiveDateTime) -> i64 {
    (micros_of(t) - micros_of(pivot)).div_euclid(step_us.max(1))
}

/// The select list of one group per value of `by`, grouped by the first two columns.
fn group_select(pg: bool, by: By) -> SqlLiteral<GroupSql> {
    let (value, label) = match by {
        By::Event => ("events.event".to_string(), "events.event".to_string()),
        By::Resource => {
            let label = |key: &str| {
                if pg {
                    format!("(CAST(events.resource AS jsonb) ->> '{key}')")
                } else {
                    format!("json_extract(events.resource, '$.\"{key}\"')")
                }
            };
            (
                "events.resource_id".to_string(),
                format!(
                    "coalesce({}, {}, events.resource_id)",
                    label("prefect.resource.name"),
                    label("prefect.name")
                ),
            )
        }
        By::Time { pivot, step_us } => {
            let at = micros_sql(pg, "events.occurred");
            let (p, s) = (micros_of(&pivot), step_us.max(1));
            // Whole steps from the pivot, rounded down on both sides of it.
            let bucket = format!(
                "CAST(CASE WHEN {at} >= {p} THEN ({at} - {p}) / {s} \
                 ELSE -((({p} - {at}) + {s} - 1) / {s}) END AS TEXT)"
            );
            (bucket, "''".to_string())
        }
    };
    sql(&format!(
        "{value}, {label}, count(*), min(events.occurred), max(events.occurred)"
    ))
}

/// Counted over the events themselves.
async fn grouped(
    c: &mut Conn,
    scope: &Scope,
    f: &EventFilter,
    by: By,
) -> StorageResult<Vec<Group>> {
    let pg = c.is_postgres();
    let cond = build::events(scope, f);
    let rows: Vec<(String, String, i64, NaiveDateTime, NaiveDateTime)> = db_run!(c, |c| {
        events::table
            .filter(cond)
            .group_by(sql::<BigInt>("1, 2"))
            .select(group_select(pg, by))
            .load(c)
            .await
    })?;
    Ok(rows.into_iter().map(group_of).collect())
}

fn group_of(
    (value, label, count, first, last): (String, String, i64, NaiveDateTime, NaiveDateTime),
) -> Group {
    Group {
        value,
        label,
        count,
        first,
        last,
    }
}

/// The events of the window by name and hour: `event_counts` for its whole hours, the events
/// themselves for the partial hours at its ends (each within one hour). A group's `first` is in
/// its hour.
async fn hourly(c: &mut Conn, scope: &Scope, f: &EventFilter) -> StorageResult<Vec<Group>> {
    let (from, to) = (hour_at_or_after(scope.since), hour_of(scope.until));
    if from >= to {
        return grouped(c, scope, f, By::Event).await;
    }
    let mut out = Vec::new();
    let edges = [
        (scope.since, from - TimeDelta::microseconds(1)),
        (to, scope.until),
    ];
    // The partial hours: every name counted over the time index alone (each backend then reads
    // one hour of the index, whatever the names), the filter's names kept in Rust.
    let all_names = EventFilter {
        event: None,
        ..f.clone()
    };
    for (since, until) in edges {
        if since <= until {
            let edge = Scope {
                ws: scope.ws.clone(),
                since,
                until,
            };
            let groups = grouped(c, &edge, &all_names, By::Event).await?;
            out.extend(
                groups
                    .into_iter()
                    .filter(|g| f.event.as_ref().is_none_or(|n| n.allows(&g.value))),
            );
        }
    }
    let cond = build::hours(&scope.ws, from, to, f);
    let rows: Vec<(String, i64, NaiveDateTime, NaiveDateTime)> = db_run!(c, |c| {
        event_counts::table
            .filter(cond)
            .select((
                event_counts::event,
                event_counts::count,
                event_counts::first_occurred,
                event_counts::last_occurred,
            ))
            .load(c)
            .await
    })?;
    out.extend(rows.into_iter().map(|(event, count, first, last)| Group {
        value: event.clone(),
        label: event,
        count,
        first,
        last,
    }));
    Ok(out)
}
