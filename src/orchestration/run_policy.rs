//! The `empirical_policy` of runs: `FlowRunPolicy` and `TaskRunPolicy`, with Prefect's
//! defaults and its deprecated-field back-fill (`max_retries` → `retries`,
//! `retry_delay_seconds` → `retry_delay`).
//!
//! Owns: the JSON shape of retry/pause settings. Unknown keys are kept (in `extra`) so nothing
//! the client sends is lost. Must not touch: storage, HTTP.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

fn zero_f64() -> f64 {
    0.0
}

fn some_false() -> Option<bool> {
    Some(false)
}

fn empty_keys() -> Option<Vec<String>> {
    Some(Vec::new())
}

fn number_is_zero(n: &Number) -> bool {
    n.as_f64() == Some(0.0)
}

/// A whole number stays an integer on the wire; anything else is a float.
fn number_from_f64(v: f64) -> Option<Number> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Some(Number::from(v as i64))
    } else {
        Number::from_f64(v)
    }
}

/// `FlowRunPolicy`: how a flow run retries, and its pause bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FlowRunPolicyWire")]
pub struct FlowRunPolicy {
    /// Deprecated; copied into `retries` when that is unset or zero.
    pub max_retries: i64,
    /// Deprecated; copied into `retry_delay` when that is unset or zero.
    pub retry_delay_seconds: f64,
    pub retries: Option<i64>,
    /// Seconds between retries (an integer in Prefect; any number is accepted).
    pub retry_delay: Option<Number>,
    /// Pauses this run has observed (set semantics: no duplicates).
    pub pause_keys: Option<Vec<String>>,
    pub resuming: Option<bool>,
    /// `"in_process"`, `"reschedule"` or null.
    pub retry_type: Option<String>,
    /// Keys Prefect does not define, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for FlowRunPolicy {
    fn default() -> Self {
        FlowRunPolicy {
            max_retries: 0,
            retry_delay_seconds: 0.0,
            retries: None,
            retry_delay: None,
            pause_keys: empty_keys(),
            resuming: some_false(),
            retry_type: None,
            extra: Map::new(),
        }
    }
}

#[derive(Deserialize)]
struct FlowRunPolicyWire {
    #[serde(default)]
    max_retries: Option<i64>,
    #[serde(default)]
    retry_delay_seconds: Option<f64>,
    #[serde(default)]
    retries: Option<i64>,
    #[serde(default)]
    retry_delay: Option<Number>,
    #[serde(default = "empty_keys")]
    pause_keys: Option<Vec<String>>,
    #[serde(default = "some_false")]
    resuming: Option<bool>,
    #[serde(default)]
    retry_type: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl From<FlowRunPolicyWire> for FlowRunPolicy {
    fn from(w: FlowRunPolicyWire) -> Self {
        let max_retries = w.max_retries.unwrap_or(0);
        let retry_delay_seconds = w.retry_delay_seconds.unwrap_or(0.0);
        let mut retries = w.retries;
        if retries.unwrap_or(0) == 0 && max_retries != 0 {
            retries = Some(max_retries);
        }
        let mut retry_delay = w.retry_delay;
        if retry_delay.as_ref().is_none_or(number_is_zero) && retry_delay_seconds != 0.0 {
            retry_delay = number_from_f64(retry_delay_seconds);
        }
        let mut pause_keys = w.pause_keys;
        if let Some(keys) = pause_keys.as_mut() {
            dedupe(keys);
        }
        FlowRunPolicy {
            max_retries,
            retry_delay_seconds,
            retries,
            retry_delay,
            pause_keys,
            resuming: w.resuming,
            retry_type: w.retry_type,
            extra: w.extra,
        }
    }
}

fn dedupe(keys: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
}

impl FlowRunPolicy {
    /// `retry_delay` in seconds (0 when unset).
    pub fn retry_delay_secs(&self) -> f64 {
        self.retry_delay
            .as_ref()
            .and_then(Number::as_f64)
            .unwrap_or(0.0)
    }

    /// Whether `key` is among the observed pause keys.
    pub fn has_pause_key(&self, key: &str) -> bool {
        self.pause_keys
            .as_ref()
            .is_some_and(|keys| keys.iter().any(|k| k == key))
    }

    /// Adds a pause key, keeping set semantics.
    pub fn add_pause_key(&mut self, key: String) {
        let keys = self.pause_keys.get_or_insert_with(Vec::new);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    /// Whether the run is flagged as resuming from a pause.
    pub fn is_resuming(&self) -> bool {
        self.resuming.unwrap_or(false)
    }
}

/// `retry_delay` of a task run: one delay, or one delay per retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskRetryDelay {
    Seconds(Number),
    PerAttempt(Vec<Number>),
}

impl TaskRetryDelay {
    fn is_falsy(&self) -> bool {
        match self {
            TaskRetryDelay::Seconds(n) => number_is_zero(n),
            TaskRetryDelay::PerAttempt(list) => list.is_empty(),
        }
    }
}

/// `TaskRunPolicy`: how a task run retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TaskRunPolicyWire")]
pub struct TaskRunPolicy {
    /// Deprecated; copied into `retries` when that is unset or zero.
    pub max_retries: i64,
    /// Deprecated; copied into `retry_delay` when that is unset or zero.
    pub retry_delay_seconds: f64,
    pub retries: Option<i64>,
    pub retry_delay: Option<TaskRetryDelay>,
    pub retry_jitter_factor: Option<f64>,
    /// Keys Prefect does not define, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for TaskRunPolicy {
    fn default() -> Self {
        TaskRunPolicy {
            max_retries: 0,
            retry_delay_seconds: zero_f64(),
            retries: None,
            retry_delay: None,
            retry_jitter_factor: None,
            extra: Map::new(),
        }
    }
}

#[derive(Deserialize)]
struct TaskRunPolicyWire {
    #[serde(default)]
    max_retries: Option<i64>,
    #[serde(default)]
    retry_delay_seconds: Option<f64>,
    #[serde(default)]
    retries: Option<i64>,
    #[serde(default)]
    retry_delay: Option<TaskRetryDelay>,
    #[serde(default)]
    retry_jitter_factor: Option<f64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl From<TaskRunPolicyWire> for TaskRunPolicy {
    fn from(w: TaskRunPolicyWire) -> Self {
        let max_retries = w.max_retries.unwrap_or(0);
        let retry_delay_seconds = w.retry_delay_seconds.unwrap_or(0.0);
        let mut retries = w.retries;
        if retries.unwrap_or(0) == 0 && max_retries != 0 {
            retries = Some(max_retries);
        }
        let mut retry_delay = w.retry_delay;
        if retry_delay.as_ref().is_none_or(TaskRetryDelay::is_falsy) && retry_delay_seconds != 0.0 {
            retry_delay = number_from_f64(retry_delay_seconds).map(TaskRetryDelay::Seconds);
        }
        TaskRunPolicy {
            max_retries,
            retry_delay_seconds,
            retries,
            retry_delay,
            retry_jitter_factor: w.retry_jitter_factor,
            extra: w.extra,
        }
    }
}

impl TaskRunPolicy {
    /// The base delay before retry number `run_count` (Prefect indexes a list with
    /// `min(run_count - 1, len - 1)`, Python-style, so index -1 is the last element).
    /// An empty list counts as no delay.
    pub fn base_delay_secs(&self, run_count: i64) -> f64 {
        match &self.retry_delay {
            None => 0.0,
            Some(TaskRetryDelay::Seconds(n)) => n.as_f64().unwrap_or(0.0),
            Some(TaskRetryDelay::PerAttempt(list)) => {
                let len = list.len() as i64;
                if len == 0 {
                    return 0.0;
                }
                let mut idx = (run_count - 1).min(len - 1);
                if idx < 0 {
                    idx += len;
                }
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| list.get(i))
                    .and_then(Number::as_f64)
                    .unwrap_or(0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_run_policy_defaults_serialise_like_prefect() {
        let v = serde_json::to_value(FlowRunPolicy::default()).unwrap();
        assert_eq!(
            v,
            json!({"max_retries": 0, "retry_delay_seconds": 0.0, "retries": null,
                   "retry_delay": null, "pause_keys": [], "resuming": false, "retry_type": null})
        );
        let parsed: FlowRunPolicy = serde_json::from_value(json!({})).unwrap();
        assert_eq!(parsed, FlowRunPolicy::default());
    }

    #[test]
    fn flow_run_policy_backfills_deprecated_fields_and_keeps_extras() {
        let p: FlowRunPolicy = serde_json::from_value(json!({
            "max_retries": 2, "retry_delay_seconds": 5.0, "retries": 0,
            "pause_keys": ["a", "a", "b"], "custom": {"x": 1}
        }))
        .unwrap();
        assert_eq!(p.retries, Some(2));
        assert_eq!(p.retry_delay, Some(Number::from(5)));
        assert_eq!(p.retry_delay_secs(), 5.0);
        assert_eq!(p.pause_keys, Some(vec!["a".into(), "b".into()]));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["custom"], json!({"x": 1}));
        let p: FlowRunPolicy =
            serde_json::from_value(json!({"retries": 1, "retry_delay": 2.5})).unwrap();
        assert_eq!(p.retry_delay_secs(), 2.5);
    }

    #[test]
    fn flow_run_policy_pause_keys_are_a_set() {
        let mut p = FlowRunPolicy::default();
        p.add_pause_key("k".into());
        p.add_pause_key("k".into());
        assert!(p.has_pause_key("k"));
        assert_eq!(p.pause_keys.as_ref().map(Vec::len), Some(1));
        p.pause_keys = None;
        p.add_pause_key("j".into());
        assert!(p.has_pause_key("j"));
    }

    #[test]
    fn task_run_policy_accepts_number_or_list_delays() {
        let p: TaskRunPolicy =
            serde_json::from_value(json!({"retries": 3, "retry_delay": [1, 2, 4]})).unwrap();
        assert_eq!(p.base_delay_secs(1), 1.0);
        assert_eq!(p.base_delay_secs(2), 2.0);
        assert_eq!(p.base_delay_secs(9), 4.0);
        assert_eq!(p.base_delay_secs(0), 4.0);
        let p: TaskRunPolicy = serde_json::from_value(json!({"retry_delay": 0.5})).unwrap();
        assert_eq!(p.base_delay_secs(1), 0.5);
        let p: TaskRunPolicy =
            serde_json::from_value(json!({"retry_delay": [], "retry_delay_seconds": 3})).unwrap();
        assert_eq!(p.base_delay_secs(1), 3.0);
        let v = serde_json::to_value(TaskRunPolicy::default()).unwrap();
        assert_eq!(
            v,
            json!({"max_retries": 0, "retry_delay_seconds": 0.0, "retries": null,
                   "retry_delay": null, "retry_jitter_factor": null})
        );
    }
}
