//! `event_counts`: how many events of each name each workspace received in each hour (with the
//! first and last time one occurred). The persister adds a batch's new events in the transaction
//! that stores them and retention removes whole hours with their events, so the counts are exact;
//! totals and counts by name or time read them for the whole hours of a window.

use std::collections::BTreeMap;

use chrono::{DurationRound, NaiveDateTime, TimeDelta};
use diesel::dsl::{sql, Eq};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

use super::EventRow;
use crate::ids::WorkspaceId;
use crate::storage::schema::event_counts;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = event_counts)]
pub struct CountRow {
    pub workspace_id: WorkspaceId,
    pub hour: NaiveDateTime,
    pub event: String,
    pub count: i64,
    pub first_occurred: NaiveDateTime,
    pub last_occurred: NaiveDateTime,
}

/// The hour `t` falls in.
pub fn hour_of(t: NaiveDateTime) -> NaiveDateTime {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The first whole hour at or after `t`.
pub fn hour_at_or_after(t: NaiveDateTime) -> NaiveDateTime {
    let h = hour_of(t);
    if h == t {
        h
    } else {
        h + TimeDelta::hours(1)
    }
}

/// The events' counts per workspace, hour and name, in key order.
pub fn tally<'a>(events: impl IntoIterator<Item = &'a EventRow>) -> Vec<CountRow> {
    let mut by_key: BTreeMap<(&WorkspaceId, NaiveDateTime, &str), CountRow> = BTreeMap::new();
    for e in events {
        let hour = hour_of(e.occurred);
        by_key
            .entry((&e.workspace_id, hour, e.event.as_str()))
            .and_modify(|r| {
                r.count += 1;
                r.first_occurred = r.first_occurred.min(e.occurred);
                r.last_occurred = r.last_occurred.max(e.occurred);
            })
            .or_insert_with(|| CountRow {
                workspace_id: e.workspace_id.clone(),
                hour,
                event: e.event.clone(),
                count: 1,
                first_occurred: e.occurred,
                last_occurred: e.occurred,
            });
    }
    by_key.into_values().collect()
}

pub fn table() -> event_counts::table {
    event_counts::table
}

pub fn key() -> (
    event_counts::workspace_id,
    event_counts::hour,
    event_counts::event,
) {
    (
        event_counts::workspace_id,
        event_counts::hour,
        event_counts::event,
    )
}

type Merge = (
    Eq<event_counts::count, SqlLiteral<BigInt>>,
    Eq<event_counts::first_occurred, SqlLiteral<Timestamp>>,
    Eq<event_counts::last_occurred, SqlLiteral<Timestamp>>,
);

/// The upsert's update: the new events added to the hour's row.
pub fn merge(pg: bool) -> Merge {
    let (least, greatest) = if pg {
        ("LEAST", "GREATEST")
    } else {
        ("min", "max")
    };
    (
        event_counts::count.eq(sql("event_counts.count + excluded.count")),
        event_counts::first_occurred.eq(sql(&format!(
            "{least}(event_counts.first_occurred, excluded.first_occurred)"
        ))),
        event_counts::last_occurred.eq(sql(&format!(
            "{greatest}(event_counts.last_occurred, excluded.last_occurred)"
        ))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("time")
    }

    fn row(ws: &str, t: &str, name: &str) -> EventRow {
        EventRow {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: WorkspaceId::new(ws),
            occurred: at(t),
            received: at(t),
            event: name.into(),
            resource_id: "r".into(),
            resource: "{}".into(),
            related: "[]".into(),
            payload: "{}".into(),
            follows: None,
        }
    }

    #[test]
    fn tallies_per_workspace_hour_and_name() {
        let rows = [
            row("w", "2026-12-04 10:59:59.9", "a"),
            row("w", "2026-12-04 10:00:00", "a"),
            row("w", "2026-12-04 11:00:00", "a"),
            row("w", "2026-12-04 10:30:00", "b"),
            row("v", "2026-12-04 10:30:00", "a"),
        ];
        let t = tally(rows.iter());
        assert_eq!(t.len(), 4);
        let a10 = t
            .iter()
            .find(|r| {
                r.workspace_id.as_str() == "w"
                    && r.event == "a"
                    && r.hour == at("2026-12-04 10:00:00")
            })
            .expect("row");
        assert_eq!(a10.count, 2);
        assert_eq!(a10.first_occurred, at("2026-12-04 10:00:00"));
        assert_eq!(a10.last_occurred, at("2026-12-04 10:59:59.9"));
        assert_eq!(
            hour_at_or_after(at("2026-12-04 10:00:00")),
            at("2026-12-04 10:00:00")
        );
        assert_eq!(
            hour_at_or_after(at("2026-12-04 10:00:01")),
            at("2026-12-04 11:00:00")
        );
    }
}
