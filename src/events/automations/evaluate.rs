//! Trigger evaluation, pure: how one event (reactively) or the passing of time (proactively)
//! changes an event trigger's bucket — the open window counting the events it expects for one
//! `for_each` key — and when the trigger fires; and when a composite trigger's child firings
//! make it fire. The rules are Prefect's (`prefect/server/events/triggers.py`: `evaluate`,
//! `reactive_evaluation`, `proactive_evaluation`); the caller loads the bucket under a lock and
//! stores what is left in the slot, in one transaction with the firings.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{EventTrigger, Posture, Require, RequireWord, Trigger};
use crate::event_model::ReceivedEvent;

/// How far before an event a trigger's first window starts, so that events arriving slightly
/// out of order around it still count (Prefect's `PRECEDING_EVENT_LOOKBACK`).
pub fn lookback() -> Duration {
    Duration::minutes(15)
}

/// One trigger's open window for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub count: i64,
    pub last_event: Option<ReceivedEvent>,
}

/// One instance of a trigger firing (Prefect's `Firing`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Firing {
    pub id: Uuid,
    pub trigger_id: Uuid,
    pub triggered: DateTime<Utc>,
    #[serde(default)]
    pub triggering_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub triggering_firings: Vec<Firing>,
    #[serde(default)]
    pub triggering_event: Option<ReceivedEvent>,
}

impl Firing {
    pub fn new(
        trigger_id: Uuid,
        triggered: DateTime<Utc>,
        triggering_labels: BTreeMap<String, String>,
        triggering_event: Option<ReceivedEvent>,
    ) -> Firing {
        Firing {
            id: Uuid::now_v7(),
            trigger_id,
            triggered,
            triggering_labels,
            triggering_firings: Vec::new(),
            triggering_event,
        }
    }
}

/// `seconds` (a user's `within` or `schedule_after`) as a duration, saturating instead of
/// failing on a value no date can be shifted by.
pub fn seconds(seconds: f64) -> Duration {
    let bound = if seconds < 0.0 {
        Duration::MIN
    } else {
        Duration::MAX
    };
    Duration::try_milliseconds((seconds * 1000.0).round() as i64).unwrap_or(bound)
}

/// `t` shifted by `d`, held at the ends of time instead of overflowing (a `within` of a
/// billion years must not stop evaluation).
pub fn shift(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

fn window(t: &EventTrigger) -> Duration {
    seconds(t.within)
}

fn labels(t: &EventTrigger, key: &[String]) -> BTreeMap<String, String> {
    let mut names: Vec<&String> = t.for_each.iter().collect();
    names.sort();
    names
        .into_iter()
        .cloned()
        .zip(key.iter().cloned())
        .collect()
}

/// Prefect's `evaluate`: `slot` is the stored bucket (`None`: no row) and is left as the row to
/// store; `now` is the event's time (reactive) or the evaluation's (proactive, no event).
pub fn evaluate(
    t: &EventTrigger,
    key: &[String],
    slot: &mut Option<Bucket>,
    now: DateTime<Utc>,
    event: Option<&ReceivedEvent>,
    triggered: DateTime<Utc>,
    fired: &mut Vec<Firing>,
) {
    let Some(mut b) = slot.clone() else {
        return;
    };
    // A triggering event's count is spent in the open window or in the next one.
    let mut count = i64::from(event.is_some());
    if now < b.start {
        // Late, or for a window that has already fired: ignored.
        return;
    }
    let previous_last = b.last_event.clone();
    if count > 0 && (t.immediate() || (b.start <= now && now < b.end)) {
        b.count += count;
        if let Some(e) = event {
            b.last_event = Some(e.clone());
        }
        *slot = Some(b.clone());
        count = 0;
    }
    // Reactive triggers fire as soon as the threshold is met; proactive ones only once the
    // window is over (a late event could still arrive).
    let ready = t.posture == Posture::Reactive || b.end <= now;
    let meets = t.meets_threshold(b.count);
    if ready && meets {
        fired.push(Firing::new(
            t.id,
            triggered,
            labels(t, key),
            event.cloned().or_else(|| b.last_event.clone()),
        ));
        *slot = None;
    } else if now < b.end {
        // More time left. A proactive trigger whose event both opens and counts (heartbeats):
        // the event starts the window over.
        if let Some(e) = event {
            let name = &e.event.event;
            if t.posture == Posture::Proactive && t.starts_after(name) && t.expects(name) {
                let mut last = e.clone();
                if let Some(p) = previous_last {
                    let pname = &p.event.event;
                    if t.expects(pname)
                        && !t.starts_after(pname)
                        && p.event.occurred >= e.event.occurred
                    {
                        last = p;
                    }
                }
                *slot = Some(Bucket {
                    start: e.event.occurred,
                    end: shift(e.event.occurred, window(t)),
                    count: 0,
                    last_event: Some(last),
                });
            }
        }
        return;
    }
    // The window is over, or the trigger fired: the next window.
    if !t.after.is_empty() {
        // Only another opening event starts one.
        *slot = None;
        return;
    }
    if t.within == 0.0 {
        return;
    }
    let start = b.end.max(now);
    let end = shift(start, window(t));
    if t.posture == Posture::Reactive && count > 0 {
        // An event past the old window: it may fire the new one at once.
        *slot = Some(Bucket {
            start,
            end,
            count: 0,
            last_event: None,
        });
        evaluate(t, key, slot, now, event, triggered, fired);
    } else {
        *slot = Some(Bucket {
            start,
            end,
            count,
            last_event: None,
        });
    }
}

/// Prefect's `reactive_evaluation` of one covered event against the trigger's bucket for the
/// event's key.
pub fn react(
    t: &EventTrigger,
    key: &[String],
    slot: &mut Option<Bucket>,
    e: &ReceivedEvent,
    triggered: DateTime<Utc>,
    fired: &mut Vec<Firing>,
) {
    let name = &e.event.event;
    let occurred = e.event.occurred;
    if !t.after.is_empty() && t.starts_after(name) {
        // When the same event opens and counts, the window starts at -1 so that the opening
        // event leaves it at 0.
        if slot.is_none() {
            *slot = Some(Bucket {
                start: occurred,
                end: shift(occurred, window(t)),
                count: if t.expects(name) { -1 } else { 0 },
                last_event: Some(e.clone()),
            });
        }
    } else if t.after.is_empty() && t.expects(name) && slot.is_none() {
        // A first window reaches back, to count events arriving slightly out of order.
        *slot = Some(Bucket {
            start: shift(occurred, -lookback()),
            end: shift(occurred, window(t)),
            count: 0,
            last_event: Some(e.clone()),
        });
    }
    if !t.expects(name) || slot.is_none() {
        return;
    }
    evaluate(t, key, slot, occurred, Some(e), triggered, fired);
}

/// Prefect's `proactive_evaluation` of one trigger's buckets at `as_of`. Buckets that already
/// reached the threshold can't fire and are dropped; a trigger without `for_each` always has
/// its one window open.
pub fn proactive(
    t: &EventTrigger,
    buckets: &mut BTreeMap<Vec<String>, Option<Bucket>>,
    as_of: DateTime<Utc>,
    fired: &mut Vec<Firing>,
) {
    if t.for_each.is_empty() {
        let slot = buckets.entry(Vec::new()).or_insert(None);
        if slot.is_none() {
            *slot = Some(Bucket {
                start: as_of,
                end: shift(as_of, window(t)),
                count: 0,
                last_event: None,
            });
        }
    }
    for (key, slot) in buckets.iter_mut() {
        if slot.as_ref().is_some_and(|b| b.count >= t.threshold) {
            *slot = None;
            continue;
        }
        evaluate(t, key, slot, as_of, None, as_of, fired);
    }
}

/// How many child firings a composite trigger needs.
pub fn expected_firings(parent: &Trigger) -> usize {
    match parent {
        Trigger::Event(_) => 1,
        Trigger::Compound(c) => match c.require {
            Require::Word(RequireWord::Any) => 1,
            Require::Word(RequireWord::All) => c.triggers.len(),
            Require::Count(n) => usize::try_from(n).unwrap_or(0),
        },
        Trigger::Sequence(s) => s.triggers.len(),
    }
}

/// Whether these child firings (at most one per child) fire the composite trigger: enough of
/// them (compound), or every child in order (sequence).
pub fn composite_ready(parent: &Trigger, firings: &[Firing]) -> bool {
    match parent {
        Trigger::Event(_) => !firings.is_empty(),
        Trigger::Compound(_) => firings.len() >= expected_firings(parent),
        Trigger::Sequence(s) => {
            let mut order: Vec<&Firing> = firings.iter().collect();
            order.sort_by_key(|f| f.triggered);
            let fired: Vec<Uuid> = order.iter().map(|f| f.trigger_id).collect();
            let expected: Vec<Uuid> = s.triggers.iter().map(Trigger::id).collect();
            fired == expected
        }
    }
}

impl Trigger {
    /// The composite trigger that directly contains the trigger `child` (`None` at the top).
    pub fn parent_of(&self, child: Uuid) -> Option<&Trigger> {
        let children = match self {
            Trigger::Event(_) => return None,
            Trigger::Compound(c) => &c.triggers,
            Trigger::Sequence(s) => &s.triggers,
        };
        if children.iter().any(|t| t.id() == child) {
            return Some(self);
        }
        children.iter().find_map(|t| t.parent_of(child))
    }

    /// The composite's `within` in seconds, if it has one.
    pub fn composite_within(&self) -> Option<f64> {
        match self {
            Trigger::Event(_) => None,
            Trigger::Compound(c) => c.within,
            Trigger::Sequence(s) => s.within,
        }
    }

    /// `"event"`, `"compound"` or `"sequence"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Event(_) => "event",
            Trigger::Compound(_) => "compound",
            Trigger::Sequence(_) => "sequence",
        }
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
