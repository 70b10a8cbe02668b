//! An [`EventFilter`] as a [`Where`] on `events` (Prefect's `EventFilter.build_where_clauses`):
//! related and "any" resources through `event_resources` (indexed by workspace, resource id and
//! time), labels through the JSON of each resource, name and id prefixes as index ranges. Every
//! condition, subqueries included, is scoped to one workspace and the filter's window.

use chrono::NaiveDateTime;

use super::sql::{CmpOp, Col, Value, Where};
use super::{escape_like, ids};
use crate::col;
use crate::ids::WorkspaceId;
use crate::query::events::{
    nonempty, EventFilter, Labels, NameFilter, Order, RelatedFilter, ResourceFilter, TextFilter,
};

/// The workspace and the window a query reads.
#[derive(Debug, Clone)]
pub struct Scope {
    pub ws: WorkspaceId,
    pub since: NaiveDateTime,
    pub until: NaiveDateTime,
}

/// The smallest string greater than every string starting with `prefix` (None: there is none).
fn after_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `col` starts with `prefix`, as a range an index on `col` serves (text compares byte by byte:
/// SQLite's default, the "C" collation of these columns on PostgreSQL).
pub fn starts_with(col: Col, prefix: &str) -> Where {
    if prefix.is_empty() {
        return Where::True;
    }
    let mut conds = vec![Where::cmp(col, CmpOp::Ge, prefix)];
    if let Some(end) = after_prefix(prefix) {
        conds.push(Where::cmp(col, CmpOp::Lt, end));
    }
    Where::all(conds)
}

/// A label glob (`*`, `?`) as a LIKE pattern.
fn like_of_glob(glob: &str) -> String {
    escape_like(glob).replace('*', "%").replace('?', "_")
}

/// One label pattern against a value: `!` negates.
fn pattern_cond(pattern: &str, value: impl Fn(String) -> Where) -> Where {
    match pattern.strip_prefix('!') {
        Some(p) => value(like_of_glob(p)).negate(),
        None => value(like_of_glob(pattern)),
    }
}

/// Each label must match one of its patterns. `id_col` holds `prefect.resource.id`, `role_col`
/// (if any) `prefect.resource.role`; other labels are read from the JSON in `json_col`.
fn label_conds(
    out: &mut Vec<Where>,
    labels: &Labels,
    id_col: Col,
    role_col: Option<Col>,
    json_col: Col,
) {
    for (key, values) in labels {
        let patterns = values.values();
        if patterns.is_empty() {
            out.push(Where::False);
            continue;
        }
        let cond = match (key.as_str(), role_col) {
            ("prefect.resource.id", _) => Where::any(
                patterns
                    .iter()
                    .map(|p| pattern_cond(p, |like| Where::like(id_col, like)))
                    .collect(),
            ),
            ("prefect.resource.role", Some(role)) => {
                Where::is_in(role, patterns.iter().map(|p| p.to_string()).collect())
            }
            _ => Where::any(
                patterns
                    .iter()
                    .map(|p| pattern_cond(p, |like| Where::json_like(json_col, key, like)))
                    .collect(),
            ),
        };
        out.push(cond);
    }
}

/// The name conditions on an event-name column (`events.event` or `event_counts.event`).
pub fn name_conds(col: Col, f: &NameFilter) -> Vec<Where> {
    let mut out = Vec::new();
    if let Some(p) = nonempty(&f.prefix) {
        out.push(Where::any(p.iter().map(|p| starts_with(col, p)).collect()));
    }
    if let Some(p) = nonempty(&f.exclude_prefix) {
        out.extend(p.iter().map(|p| starts_with(col, p).negate()));
    }
    if let Some(n) = nonempty(&f.name) {
        out.push(Where::is_in(col, n.clone()));
    }
    if let Some(n) = nonempty(&f.exclude_name) {
        out.push(Where::not_in(col, n.clone()));
    }
    out
}

/// `event_resources` rows of the scope: the start of every subquery.
fn resources_in(scope: &Scope) -> Vec<Where> {
    vec![
        Where::eq(col!(event_resources::workspace_id), &scope.ws),
        Where::cmp(col!(event_resources::occurred), CmpOp::Ge, scope.since),
        Where::cmp(col!(event_resources::occurred), CmpOp::Le, scope.until),
    ]
}

/// `events.id IN (SELECT event_id FROM event_resources WHERE scope AND conds)`.
fn with_resources(scope: &Scope, conds: Vec<Where>) -> Where {
    let mut all = resources_in(scope);
    all.extend(conds);
    Where::in_select(
        col!(events::id),
        col!(event_resources::event_id),
        Where::all(all),
    )
}

/// The conditions of a resource filter on one resource's columns.
fn resource_conds(f: &ResourceFilter, id_col: Col, role_col: Option<Col>, json: Col) -> Vec<Where> {
    let mut out = Vec::new();
    if let Some(ids_) = nonempty(&f.id) {
        out.push(Where::is_in(id_col, ids_.clone()));
    }
    if let Some(p) = nonempty(&f.id_prefix) {
        out.push(Where::any(
            p.iter().map(|p| starts_with(id_col, p)).collect(),
        ));
    }
    if let Some(l) = &f.labels {
        label_conds(&mut out, l, id_col, role_col, json);
    }
    out
}

fn related_cond(scope: &Scope, f: &RelatedFilter) -> Option<Where> {
    let (id, role) = (
        col!(event_resources::resource_id),
        col!(event_resources::resource_role),
    );
    let mut conds = Vec::new();
    if let Some(v) = nonempty(&f.id) {
        conds.push(Where::is_in(id, v.clone()));
    }
    if let Some(v) = nonempty(&f.role) {
        conds.push(Where::is_in(role, v.clone()));
    }
    if let Some(pairs) = nonempty(&f.resources_in_roles) {
        conds.push(Where::any(
            pairs
                .iter()
                .map(|(i, r)| {
                    Where::all(vec![Where::eq(id, i.as_str()), Where::eq(role, r.as_str())])
                })
                .collect(),
        ));
    }
    if let Some(l) = &f.labels {
        label_conds(
            &mut conds,
            l,
            id,
            Some(role),
            col!(event_resources::resource),
        );
    }
    if conds.is_empty() {
        return None;
    }
    Some(with_resources(scope, conds))
}

/// The primary resource or one of the related ones matches: `event_resources` holds both (the
/// primary with role ""), so this is one indexed lookup.
fn any_resource_cond(scope: &Scope, f: &ResourceFilter) -> Option<Where> {
    let conds = resource_conds(
        f,
        col!(event_resources::resource_id),
        Some(col!(event_resources::resource_role)),
        col!(event_resources::resource),
    );
    if conds.is_empty() {
        return None;
    }
    Some(with_resources(scope, conds))
}

fn text_conds(out: &mut Vec<Where>, f: &TextFilter) {
    let t = f.terms();
    let cols = vec![
        col!(events::event),
        col!(events::resource),
        col!(events::related),
        col!(events::payload),
    ];
    let like = |term: &String| Where::TextLike {
        cols: cols.clone(),
        pattern: format!("%{}%", escape_like(&term.to_lowercase())),
    };
    if !t.include.is_empty() {
        out.push(Where::any(t.include.iter().map(like).collect()));
    }
    out.extend(t.exclude.iter().map(|x| like(x).negate()));
    out.extend(t.required.iter().map(like));
}

/// Whether `f` names resources by id through `event_resources` (one resource's events, a flow
/// run's related events): few rows, which should drive the query.
fn by_resource_ids(f: &EventFilter) -> bool {
    f.any_resource
        .as_ref()
        .is_some_and(|a| a.iter().any(|r| nonempty(&r.id).is_some()))
        || f.related
            .as_ref()
            .is_some_and(|a| a.iter().any(|r| nonempty(&r.id).is_some()))
}

/// The filter's conditions on `events`, without the distinct-resource step.
fn plain(scope: &Scope, f: &EventFilter) -> Vec<Where> {
    // Events named by resource id are looked up by id from the `event_resources` subquery and
    // sorted, not found by walking the window in time order (which SQLite chooses for an
    // ORDER BY ... LIMIT, reading every event of the window: 3.8 s at 2,000,000 events).
    let driven = by_resource_ids(f);
    let cmp = |c: Col, op: CmpOp, v: Value| {
        if driven {
            Where::CmpNoIndex(c, op, v)
        } else {
            Where::Cmp(c, op, v)
        }
    };
    let mut out = vec![
        cmp(col!(events::workspace_id), CmpOp::Eq, (&scope.ws).into()),
        cmp(col!(events::occurred), CmpOp::Ge, scope.since.into()),
        cmp(col!(events::occurred), CmpOp::Le, scope.until.into()),
    ];
    if let Some(n) = &f.event {
        out.extend(name_conds(col!(events::event), n));
    }
    if let Some(r) = &f.resource {
        out.extend(resource_conds(
            r,
            col!(events::resource_id),
            None,
            col!(events::resource),
        ));
    }
    if let Some(related) = &f.related {
        out.extend(related.iter().filter_map(|r| related_cond(scope, r)));
    }
    if let Some(any) = &f.any_resource {
        out.extend(any.iter().filter_map(|r| any_resource_cond(scope, r)));
    }
    if let Some(v) = f.id.as_ref().and_then(|i| nonempty(&i.id)) {
        out.push(Where::is_in(col!(events::id), ids(v)));
    }
    if let Some(t) = &f.text {
        text_conds(&mut out, t);
    }
    out
}

/// The events `f` selects in `scope`: with `resource.distinct`, only each resource's first
/// event in the filter's order.
pub fn events(scope: &Scope, f: &EventFilter) -> Where {
    let conds = plain(scope, f);
    if !f.distinct() {
        return Where::all(conds);
    }
    let head = conds[..3].to_vec();
    let mut all = head;
    all.push(Where::FirstPer {
        id: col!(events::id),
        partition: col!(events::resource_id),
        order: col!(events::occurred),
        desc: f.order() == Order::Desc,
        cond: Box::new(Where::all(conds)),
    });
    Where::all(all)
}

/// Whether counting what `f` selects needs only names and times, so `event_counts` can answer
/// for whole hours.
pub fn countable_by_hour(f: &EventFilter) -> bool {
    f.resource.is_none()
        && f.related
            .as_ref()
            .is_none_or(|r| r.iter().all(related_is_empty))
        && f.any_resource.is_none()
        && f.id.as_ref().and_then(|i| nonempty(&i.id)).is_none()
        && f.text
            .as_ref()
            .is_none_or(|t| t.terms() == Default::default())
}

fn related_is_empty(r: &RelatedFilter) -> bool {
    nonempty(&r.id).is_none()
        && nonempty(&r.role).is_none()
        && nonempty(&r.resources_in_roles).is_none()
        && r.labels.is_none()
}

/// `event_counts` rows of the workspace in hours `[from, to)` whose name `f` allows.
pub fn hours(ws: &WorkspaceId, from: NaiveDateTime, to: NaiveDateTime, f: &EventFilter) -> Where {
    let mut out = vec![
        Where::eq(col!(event_counts::workspace_id), ws),
        Where::cmp(col!(event_counts::hour), CmpOp::Ge, from),
        Where::cmp(col!(event_counts::hour), CmpOp::Lt, to),
    ];
    if let Some(n) = &f.event {
        out.extend(name_conds(col!(event_counts::event), n));
    }
    Where::all(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;
    use serde_json::json;

    use crate::storage::schema::events as ev;

    fn scope() -> Scope {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0)
            .expect("time")
            .naive_utc();
        Scope {
            ws: WorkspaceId::new("w"),
            since: t,
            until: t,
        }
    }

    fn pg(w: &Where) -> String {
        diesel::debug_query::<diesel::pg::Pg, _>(&ev::table.select(ev::id).filter(w.clone()))
            .to_string()
    }

    fn sqlite(w: &Where) -> String {
        diesel::debug_query::<diesel::sqlite::Sqlite, _>(
            &ev::table.select(ev::id).filter(w.clone()),
        )
        .to_string()
    }

    #[test]
    fn prefixes_are_ranges() {
        assert_eq!(
            after_prefix("prefect.flow-run."),
            Some("prefect.flow-run/".into())
        );
        assert_eq!(after_prefix("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(after_prefix("\u{10FFFF}"), None);
        let w = starts_with(col!(events::event), "prefect.");
        assert!(pg(&w).contains(r#""events"."event" >= $"#), "{}", pg(&w));
        assert!(pg(&w).contains(r#""events"."event" < $"#));
    }

    #[test]
    fn labels_read_the_json_of_each_backend_and_resources_go_through_event_resources() {
        let f: EventFilter = serde_json::from_value(json!({
            "resource": {"labels": {"prefect.resource.name": ["my-*", "!x"]}},
            "related": {"role": ["flow"], "labels": {"prefect.resource.id": "prefect.flow.*"}},
            "any_resource": {"id": ["prefect.work-pool.1"]},
        }))
        .expect("filter");
        let w = events(&scope(), &f);
        let p = pg(&w);
        assert!(
            p.contains(r#"(CAST("events"."resource" AS jsonb) ->> $"#),
            "{p}"
        );
        assert!(p.contains(r#""events"."id" IN (SELECT "event_resources"."event_id" FROM "event_resources" WHERE"#), "{p}");
        assert!(p.contains("my-%"), "{p}");
        let s = sqlite(&w);
        assert!(s.contains("json_extract(`events`.`resource`, ?)"), "{s}");
        assert!(s.contains(r#"$.\"prefect.resource.name\""#), "{s}");
    }

    #[test]
    fn events_named_by_resource_id_are_driven_by_the_resource_lookup() {
        let by_id: EventFilter = serde_json::from_value(json!({
            "any_resource": {"id": ["prefect.flow-run.1"]},
        }))
        .expect("filter");
        let s = sqlite(&events(&scope(), &by_id));
        assert!(s.contains("+`events`.`workspace_id` = ?"), "{s}");
        assert!(s.contains("+`events`.`occurred` >= ?"), "{s}");
        // The subquery keeps its index; PostgreSQL gets no hint.
        assert!(s.contains("`event_resources`.`occurred` >= ?"), "{s}");
        assert!(!s.contains("+`event_resources`"), "{s}");
        assert!(!pg(&events(&scope(), &by_id)).contains('+'));
        let related: EventFilter = serde_json::from_value(json!({
            "related": {"id": ["prefect.flow.1"]},
        }))
        .expect("filter");
        assert!(sqlite(&events(&scope(), &related)).contains("+`events`.`occurred`"));
        // A role or a label may match most events: the window's index stays in play.
        let by_role: EventFilter = serde_json::from_value(json!({
            "related": {"role": ["flow"]}, "any_resource": {"id_prefix": ["prefect.flow-run."]},
        }))
        .expect("filter");
        assert!(!sqlite(&events(&scope(), &by_role)).contains('+'));
    }

    #[test]
    fn distinct_keeps_the_first_event_per_resource_in_the_order_asked() {
        let f: EventFilter =
            serde_json::from_value(json!({"resource": {"distinct": true}, "order": "ASC"}))
                .expect("filter");
        let p = pg(&events(&scope(), &f));
        assert!(p.contains("row_number() OVER (PARTITION BY \"events\".\"resource_id\" ORDER BY \"events\".\"occurred\" ASC)"), "{p}");
        assert!(!countable_by_hour(&f));
        let names: EventFilter =
            serde_json::from_value(json!({"event": {"prefix": ["prefect."]}})).expect("filter");
        assert!(countable_by_hour(&names));
    }
}
