//! Builders for the set-up many tests share: flows and flow runs. A builder sends only the
//! fields it was given (a test that checks what the server fills in leaves the field out),
//! asserts that the object was created and answers its body.

use serde_json::{json, Map, Value};

use super::{call, TestApp};

/// Merges the fields of the object `fields` into `body`.
fn merge(body: &mut Map<String, Value>, fields: Value) {
    match fields {
        Value::Object(fields) => body.extend(fields),
        other => panic!("not an object of fields: {other}"),
    }
}

/// `POST /api/flows/` with `{"name": name}` (201, or 200 when the flow exists); answers its id.
pub async fn create_flow(app: &TestApp, name: &str) -> String {
    let (s, f) = call(app, "POST", "/api/flows/", Some(json!({ "name": name }))).await;
    assert!(s == 201 || s == 200, "{s} {f}");
    f["id"].as_str().expect("id").to_string()
}

enum Flow {
    Name(String),
    Id(String),
}

/// `POST /api/flow_runs/`: `FlowRunBuilder::flow("etl").state(json!({"type": "PENDING"}))
/// .create(&app).await`.
pub struct FlowRunBuilder {
    flow: Flow,
    body: Map<String, Value>,
}

impl FlowRunBuilder {
    /// A run of the flow named `name`, which `create` creates (or finds) first.
    pub fn flow(name: &str) -> Self {
        Self {
            flow: Flow::Name(name.to_string()),
            body: Map::new(),
        }
    }

    /// A run of the existing flow `id`.
    pub fn flow_id(id: &str) -> Self {
        Self {
            flow: Flow::Id(id.to_string()),
            body: Map::new(),
        }
    }

    /// The run's initial `state` (left out, the server makes it PENDING).
    pub fn state(mut self, state: Value) -> Self {
        self.body.insert("state".into(), state);
        self
    }

    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.body.insert("tags".into(), json!(tags));
        self
    }

    /// `deployment_id`.
    pub fn deployment(mut self, id: &str) -> Self {
        self.body.insert("deployment_id".into(), json!(id));
        self
    }

    /// Any other fields, as an object (`name`, `parameters`, `parent_task_run_id`, …).
    pub fn with(mut self, fields: Value) -> Self {
        merge(&mut self.body, fields);
        self
    }

    /// Creates the flow if named, then the run (201); answers the run.
    pub async fn create(self, app: &TestApp) -> Value {
        let flow_id = match self.flow {
            Flow::Name(name) => create_flow(app, &name).await,
            Flow::Id(id) => id,
        };
        let mut body = Map::new();
        body.insert("flow_id".into(), json!(flow_id));
        body.extend(self.body);
        let (s, r) = call(app, "POST", "/api/flow_runs/", Some(Value::Object(body))).await;
        assert_eq!(s, 201, "{r}");
        r
    }
}
