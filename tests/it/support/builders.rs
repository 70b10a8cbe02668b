//! Builders for the set-up many tests share: flows, flow runs, work pools and their queues, and
//! deployments. A builder sends only the fields it was given (a test that checks what the server
//! fills in leaves the field out), asserts that the object was created and answers its body.

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

/// `POST /api/work_pools/{pool}/queues` with `body` (201); answers the queue.
pub async fn create_queue(app: &TestApp, pool: &str, body: Value) -> Value {
    let (s, q) = call(
        app,
        "POST",
        &format!("/api/work_pools/{pool}/queues"),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{q}");
    q
}

/// `POST /api/work_pools/` with `{"name": name, "type": "process"}`, then the pool's extra
/// queues: `WorkPoolBuilder::new("p").queue(json!({"name": "q1"})).create(&app).await`.
pub struct WorkPoolBuilder {
    name: String,
    queues: Vec<Value>,
}

impl WorkPoolBuilder {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            queues: Vec::new(),
        }
    }

    /// A queue (its create body) to add to the pool once it exists, in call order.
    pub fn queue(mut self, body: Value) -> Self {
        self.queues.push(body);
        self
    }

    /// Creates the pool (201) and its queues; answers the pool.
    pub async fn create(self, app: &TestApp) -> Value {
        let body = json!({"name": self.name, "type": "process"});
        let (s, p) = call(app, "POST", "/api/work_pools/", Some(body)).await;
        assert_eq!(s, 201, "{p}");
        for q in self.queues {
            create_queue(app, &self.name, q).await;
        }
        p
    }
}

/// `POST /api/deployments/`: `DeploymentBuilder::new("d").flow_id(&f).pool("p")
/// .schedule(json!({"interval": 3600})).create(&app).await`.
pub struct DeploymentBuilder {
    body: Map<String, Value>,
}

impl DeploymentBuilder {
    pub fn new(name: &str) -> Self {
        let mut body = Map::new();
        body.insert("name".into(), json!(name));
        Self { body }
    }

    pub fn flow_id(mut self, id: &str) -> Self {
        self.body.insert("flow_id".into(), json!(id));
        self
    }

    /// `work_pool_name`.
    pub fn pool(mut self, name: &str) -> Self {
        self.body.insert("work_pool_name".into(), json!(name));
        self
    }

    /// `work_queue_name`.
    pub fn queue(mut self, name: &str) -> Self {
        self.body.insert("work_queue_name".into(), json!(name));
        self
    }

    pub fn parameters(mut self, parameters: Value) -> Self {
        self.body.insert("parameters".into(), parameters);
        self
    }

    /// Adds `{"schedule": schedule}` to `schedules`.
    pub fn schedule(mut self, schedule: Value) -> Self {
        let list = self
            .body
            .entry("schedules")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("schedules is a list");
        list.push(json!({ "schedule": schedule }));
        self
    }

    /// The whole `schedules` list (entries with `active`, `slug`, `parameters`, …).
    pub fn schedules(mut self, schedules: Value) -> Self {
        self.body.insert("schedules".into(), schedules);
        self
    }

    /// Any other fields, as an object (`tags`, `paused`, `concurrency_limit`, …).
    pub fn with(mut self, fields: Value) -> Self {
        merge(&mut self.body, fields);
        self
    }

    /// Creates the deployment (201); answers it.
    pub async fn create(self, app: &TestApp) -> Value {
        let (s, d) = call(
            app,
            "POST",
            "/api/deployments/",
            Some(Value::Object(self.body)),
        )
        .await;
        assert_eq!(s, 201, "{d}");
        d
    }
}
