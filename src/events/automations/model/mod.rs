//! The automation model (Prefect's `prefect/server/events/schemas/automations.py` and
//! `actions.py`): triggers (event, compound, sequence) and every action type, parsed with their
//! defaults filled in, checked as Prefect checks them, and written back in Prefect's shapes.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::query::events::{LabelValues, Labels, OneOrMany};

mod actions;
pub use actions::{Action, Source};

/// A trigger: the criteria for firing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum Trigger {
    #[serde(rename = "event")]
    Event(EventTrigger),
    #[serde(rename = "compound")]
    Compound(CompoundTrigger),
    #[serde(rename = "sequence")]
    Sequence(SequenceTrigger),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Posture {
    Reactive,
    Proactive,
}

fn one() -> i64 {
    1
}

fn new_id() -> Uuid {
    Uuid::new_v4()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventTrigger {
    #[serde(default = "new_id")]
    pub id: Uuid,
    #[serde(default, rename = "match")]
    pub match_: Labels,
    #[serde(default = "no_related")]
    pub match_related: OneOrMany<Labels>,
    #[serde(default, deserialize_with = "set")]
    pub after: Vec<String>,
    #[serde(default, deserialize_with = "set")]
    pub expect: Vec<String>,
    #[serde(default, deserialize_with = "set")]
    pub for_each: Vec<String>,
    pub posture: Posture,
    #[serde(default = "one")]
    pub threshold: i64,
    /// Seconds.
    #[serde(default, deserialize_with = "seconds", serialize_with = "float")]
    pub within: f64,
}

fn no_related() -> OneOrMany<Labels> {
    OneOrMany::One(Labels::new())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompoundTrigger {
    #[serde(default = "new_id")]
    pub id: Uuid,
    pub triggers: Vec<Trigger>,
    #[serde(default, deserialize_with = "opt_seconds")]
    pub within: Option<f64>,
    pub require: Require,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceTrigger {
    #[serde(default = "new_id")]
    pub id: Uuid,
    pub triggers: Vec<Trigger>,
    #[serde(default, deserialize_with = "opt_seconds")]
    pub within: Option<f64>,
}

/// How many of a compound trigger's triggers must fire: a number, `"any"` or `"all"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Require {
    Count(i64),
    Word(RequireWord),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RequireWord {
    Any,
    All,
}

/// A JSON list as a set: duplicates dropped, first occurrence kept.
fn set<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Option<Vec<String>> = Option::deserialize(d)?;
    let mut seen = BTreeSet::new();
    Ok(v.unwrap_or_default()
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect())
}

fn float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*v)
}

/// A duration as Prefect accepts one: seconds (a number or a numeric string) or ISO 8601
/// (`PT10S`, `P1DT2H`).
pub fn parse_duration(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().or_else(|| iso_duration(s)),
        _ => None,
    }
}

fn iso_duration(s: &str) -> Option<f64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0.0;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c)?;
                total += num.parse::<f64>().ok()? * mult;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    take(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    take(time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    Some(total)
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Err(serde::de::Error::custom(
            "`within` should be a valid timedelta",
        ));
    }
    parse_duration(&v).ok_or_else(|| serde::de::Error::custom("Input should be a valid timedelta"))
}

fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    parse_duration(&v)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("Input should be a valid timedelta"))
}

/// `AutomationCreate` / `AutomationUpdate`: what a client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationIn {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    #[serde(default)]
    pub actions_on_trigger: Vec<Action>,
    #[serde(default)]
    pub actions_on_resolve: Vec<Action>,
    /// Create only.
    #[serde(default)]
    pub owner_resource: Option<String>,
}

fn yes() -> bool {
    true
}

/// A problem with a valid-shaped automation: where it is and Prefect's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub loc: Vec<Value>,
    pub msg: String,
}

fn problem(loc: Vec<Value>, msg: impl Into<String>) -> Problem {
    Problem {
        loc,
        msg: format!("Value error, {}", msg.into()),
    }
}

impl Trigger {
    pub fn id(&self) -> Uuid {
        match self {
            Trigger::Event(t) => t.id,
            Trigger::Compound(t) => t.id,
            Trigger::Sequence(t) => t.id,
        }
    }

    /// New ids for this trigger and every trigger in it (as Prefect does on create and update).
    pub fn reset_ids(&mut self) {
        match self {
            Trigger::Event(t) => t.id = Uuid::new_v4(),
            Trigger::Compound(t) => {
                t.id = Uuid::new_v4();
                t.triggers.iter_mut().for_each(Trigger::reset_ids);
            }
            Trigger::Sequence(t) => {
                t.id = Uuid::new_v4();
                t.triggers.iter_mut().for_each(Trigger::reset_ids);
            }
        }
    }

    /// Checks what the types can't, filling in a proactive trigger's default `within` (10 s).
    pub fn check(&mut self, loc: Vec<Value>) -> Result<(), Problem> {
        match self {
            Trigger::Event(t) => {
                if t.threshold < 0 {
                    return Err(problem(loc, "threshold must not be negative"));
                }
                if t.within < 0.0 {
                    return Err(problem(loc, "`within` must be at least 0 seconds"));
                }
                if t.posture == Posture::Proactive {
                    if t.within == 0.0 {
                        t.within = 10.0;
                    } else if t.within < 10.0 {
                        return Err(problem(
                            loc,
                            "`within` for Proactive triggers must be greater than or equal to 10 seconds",
                        ));
                    }
                }
                Ok(())
            }
            Trigger::Compound(t) => {
                if let Require::Count(n) = t.require {
                    if n < 1 {
                        return Err(problem(loc, "require must be at least 1"));
                    }
                    if n > t.triggers.len() as i64 {
                        return Err(problem(
                            loc,
                            "require must be less than or equal to the number of triggers",
                        ));
                    }
                }
                check_children(&mut t.triggers, loc)
            }
            Trigger::Sequence(t) => check_children(&mut t.triggers, loc),
        }
    }
}

fn check_children(triggers: &mut [Trigger], loc: Vec<Value>) -> Result<(), Problem> {
    for (i, child) in triggers.iter_mut().enumerate() {
        let mut at = loc.clone();
        at.extend([Value::from("triggers"), Value::from(i)]);
        child.check(at)?;
    }
    Ok(())
}

/// Whether a label spec matches every resource of `kind` (no label but an id of `kind.*`).
fn matches_every_resource_of_kind(labels: &Labels, kind: &str) -> bool {
    if labels.is_empty() {
        return true;
    }
    if labels.len() != 1 {
        return false;
    }
    let wanted = format!("{kind}.*");
    labels.get("prefect.resource.id").is_some_and(|v| match v {
        LabelValues::One(s) => *s == wanted,
        LabelValues::Many(list) => list.contains(&wanted),
    })
}

impl AutomationIn {
    /// Prefect's checks, in its order: each trigger, each action, then the run-deployment loop
    /// guard. Fills in defaults the checks imply.
    pub fn check(&mut self) -> Result<(), Problem> {
        self.trigger.check(vec!["body".into(), "trigger".into()])?;
        for (field, list) in [
            ("actions", &self.actions),
            ("actions_on_trigger", &self.actions_on_trigger),
            ("actions_on_resolve", &self.actions_on_resolve),
        ] {
            for (i, a) in list.iter().enumerate() {
                a.check(vec!["body".into(), field.into(), i.into()])?;
            }
        }
        self.check_loops()
    }

    /// An enabled reactive trigger on flow-run state changes every deployment run goes through
    /// must not run a deployment it can't tell apart from its own runs.
    fn check_loops(&self) -> Result<(), Problem> {
        let Trigger::Event(t) = &self.trigger else {
            return Ok(());
        };
        if !self.enabled || t.posture != Posture::Reactive {
            return Ok(());
        }
        const LOOPING: [&str; 4] = [
            "prefect.flow-run.Scheduled",
            "prefect.flow-run.Pending",
            "prefect.flow-run.Running",
            "prefect.flow-run.*",
        ];
        if !t.expect.iter().any(|e| LOOPING.contains(&e.as_str())) {
            return Ok(());
        }
        for a in &self.actions {
            let Action::RunDeployment { source, .. } = a else {
                continue;
            };
            if *source == Source::Inferred {
                return Err(problem(
                    vec!["body".into()],
                    "Running an inferred deployment from a flow run state change event will lead to an infinite loop of flow runs.  Please choose a specific deployment and add additional filtering labels to the match or match_related for this automation's trigger.",
                ));
            }
            let related_too = t
                .match_related
                .iter()
                .any(|r| matches_every_resource_of_kind(r, "prefect.flow-run"));
            if matches_every_resource_of_kind(&t.match_, "prefect.flow-run") && related_too {
                return Err(problem(
                    vec!["body".into()],
                    "Running a selected deployment from a flow run state change event may lead to an infinite loop of flow runs.  Please include additional filtering labels on either match or match_related to narrow down which flow runs will trigger this automation to exclude flow runs from the deployment you've selected.",
                ));
            }
        }
        Ok(())
    }

    /// The deployments this automation's actions run (related resources it is listed under).
    pub fn action_resources(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .actions
            .iter()
            .filter_map(Action::selected_deployment)
            .map(|d| format!("prefect.deployment.{d}"))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> AutomationIn {
        serde_json::from_value(v).expect("automation")
    }

    #[test]
    fn defaults_are_filled_in_and_written_in_prefects_shape() {
        let a = parse(json!({
            "name": "a", "trigger": {"type": "event", "posture": "Reactive", "expect": ["x", "x"]},
            "actions": [{"type": "run-deployment", "deployment_id": Uuid::nil()}, {"type": "change-flow-run-state", "state": "FAILED"}]
        }));
        let t = serde_json::to_value(&a.trigger).expect("json");
        assert_eq!(t["match_related"], json!({}));
        assert_eq!(t["expect"], json!(["x"]));
        assert_eq!(t["within"], json!(0.0));
        assert_eq!(t["threshold"], 1);
        let acts = serde_json::to_value(&a.actions).expect("json");
        assert_eq!(
            acts[0],
            json!({"type": "run-deployment", "source": "selected", "deployment_id": Uuid::nil(), "parameters": null, "job_variables": null, "schedule_after": 0.0})
        );
        assert_eq!(
            acts[1],
            json!({"type": "change-flow-run-state", "name": null, "state": "FAILED", "message": null, "force": false})
        );
    }

    #[test]
    fn prefects_rules() {
        let mut proactive = parse(
            json!({"name": "a", "trigger": {"type": "event", "posture": "Proactive"}, "actions": []}),
        );
        proactive.check().expect("ok");
        let Trigger::Event(t) = &proactive.trigger else {
            panic!("event")
        };
        assert_eq!(t.within, 10.0);
        let mut short = parse(
            json!({"name": "a", "trigger": {"type": "event", "posture": "Proactive", "within": "PT5S"}, "actions": []}),
        );
        assert!(short.check().expect_err("short").msg.contains("10 seconds"));
        let mut require = parse(
            json!({"name": "a", "trigger": {"type": "compound", "require": 3, "within": null, "triggers": [{"type": "event", "posture": "Reactive"}]}, "actions": []}),
        );
        assert!(require.check().is_err());
        let mut selected = parse(
            json!({"name": "a", "trigger": {"type": "event", "posture": "Reactive"}, "actions": [{"type": "pause-deployment"}]}),
        );
        assert_eq!(
            selected.check().expect_err("id").loc,
            vec![json!("body"), json!("actions"), json!(0)]
        );
        let mut template = parse(
            json!({"name": "a", "trigger": {"type": "event", "posture": "Reactive"}, "actions": [{"type": "send-notification", "block_document_id": Uuid::nil(), "body": "{{ oops"}]}),
        );
        assert!(template.check().is_err());
        let mut looping = parse(
            json!({"name": "a", "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Running"]}, "actions": [{"type": "run-deployment", "source": "inferred"}]}),
        );
        assert!(looping
            .check()
            .expect_err("loop")
            .msg
            .contains("infinite loop"));
        assert_eq!(parse_duration(&json!("P1DT1H")), Some(90_000.0));
    }
}
