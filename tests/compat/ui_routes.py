"""The `/ui/*` routes (and the graph, `/ui-settings`, `/admin/settings`) on one scenario, sent to
any server and normalised so that two servers' answers compare equal when they behave alike:
ids become the names of what they stand for, timestamps `<ts>`, durations `<secs>`. The same
function makes the reference capture (reference/capture_ui_routes.py, against the open-source
server) and the answers test_ui_routes.py compares with it (against Orrery)."""

import datetime as dt
import json
import uuid

import httpx


def _at(seconds: float) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return t.isoformat().replace("+00:00", "Z")


def scenario(root: str) -> dict:
    """Builds the scenario on the server at `root` (http://host:port) and returns every answer,
    normalised."""
    api = httpx.Client(base_url=root.rstrip("/") + "/api", timeout=30)
    token = uuid.uuid4().hex[:8]
    names: dict[str, str] = {}

    def post(path, body, ok=(200, 201)):
        r = api.post(path, json=body)
        assert r.status_code in ok, (path, r.status_code, r.text)
        return r.json()

    def named(label, obj):
        names[str(obj["id"])] = label
        return str(obj["id"])

    def state(kind, run, st, **details):
        body = {"state": {"type": st, "state_details": details}, "force": False}
        r = post(f"/{kind}/{run}/set_state", body)
        assert r["status"] == "ACCEPT", r

    flow_a = named("flow_a", post("/flows/", {"name": f"ui-a-{token}"}))
    flow_b = named("flow_b", post("/flows/", {"name": f"ui-b-{token}"}))
    for d in ("d1", "d2"):
        named(d, post("/deployments/", {"name": f"{d}-{token}", "flow_id": flow_a}))
    sooner = named("sooner", post("/flow_runs/", {"flow_id": flow_a, "name": f"sooner-{token}",
        "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": _at(600)}}}))
    named("later", post("/flow_runs/", {"flow_id": flow_a, "name": f"later-{token}",
        "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": _at(7200)}}}))
    named("pending_b", post("/flow_runs/", {"flow_id": flow_b, "name": f"pending-{token}",
        "state": {"type": "PENDING"}}))
    parent = named("parent", post("/flow_runs/", {"flow_id": flow_a, "name": f"parent-{token}",
        "state": {"type": "PENDING"}}))
    state("flow_runs", parent, "RUNNING")

    def task_run(label, final):
        t = named(label, post("/task_runs/", {"flow_run_id": parent, "task_key": label,
            "dynamic_key": "0", "name": f"{label}-{token}", "state": {"type": "PENDING"}}))
        for st in ("RUNNING", final):
            state("task_runs", t, st)
        return t

    done = task_run("t_done", "COMPLETED")
    task_run("t_failed", "FAILED")
    holder = task_run("t_subflow", "COMPLETED")
    child = named("child", post("/flow_runs/", {"flow_id": flow_b, "name": f"child-{token}",
        "parent_task_run_id": holder, "state": {"type": "PENDING"}}))
    for st in ("RUNNING", "COMPLETED"):
        state("flow_runs", child, st)
    for i in (1, 2):
        named(f"report_{i}", post("/artifacts/", {"key": f"report-{token}", "type": "markdown",
            "data": f"# {i}", "flow_run_id": parent, "task_run_id": done}))
    named("progress", post("/artifacts/", {"type": "progress", "data": 50.0, "flow_run_id": parent}))
    post("/artifacts/", {"type": "result", "data": "x", "flow_run_id": parent})
    unknown = str(uuid.uuid4())
    names[unknown] = "unknown"

    def norm(v, key=None):
        if isinstance(v, dict):
            return {names.get(k, k): norm(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x, key) for x in v]
        if isinstance(v, str):
            if v in names:
                return names[v]
            try:
                uuid.UUID(v)
                return "<id>"  # made by the server (a state's, a transition's)
            except ValueError:
                pass
            for i, label in names.items():
                v = v.replace(i, label)
            if token in v:
                return v.replace(token, "<token>")
            try:
                dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
                return "<ts>" if len(v) > 18 else v
            except ValueError:
                return v
        if isinstance(v, float) and key in ("duration", "lateness", "estimated_run_time",
                                             "estimated_start_time_delta", "total_run_time"):
            return "<secs>"
        return v

    out: dict = {}

    def call(name, method, path, body=None):
        r = api.request(method, path, json=body)
        try:
            data = r.json()
        except ValueError:
            data = r.text
        if r.status_code == 422 and isinstance(data, dict) and "exception_detail" in data:
            data = {"exception_detail": [{k: d.get(k) for k in ("type", "loc")}
                                         for d in data["exception_detail"]]}
        out[name] = {"status": r.status_code, "body": norm(data)}
        return data

    call("count_deployments", "POST", "/ui/flows/count-deployments",
         {"flow_ids": [flow_b, flow_a, unknown]})
    call("next_runs", "POST", "/ui/flows/next-runs", {"flow_ids": [flow_a, flow_b, unknown]})
    call("next_runs_too_many", "POST", "/ui/flows/next-runs",
         {"flow_ids": [str(uuid.uuid4()) for _ in range(201)]})
    call("count_deployments_missing", "POST", "/ui/flows/count-deployments", {})
    mine = {"flows": {"id": {"any_": [flow_a, flow_b]}}}
    call("history", "POST", "/ui/flow_runs/history", {**mine, "sort": "EXPECTED_START_TIME_ASC"})
    call("history_limit", "POST", "/ui/flow_runs/history", {**mine, "limit": 1001})
    call("count_task_runs", "POST", "/ui/flow_runs/count-task-runs",
         {"flow_run_ids": [parent, unknown]})
    call("task_run_counts", "POST", "/ui/task_runs/count",
         {"flow_runs": {"id": {"any_": [parent, child]}}})
    call("ui_task_run", "GET", f"/ui/task_runs/{done}")
    call("ui_task_run_missing", "GET", f"/ui/task_runs/{unknown}")
    buckets = call("dashboard", "POST", "/ui/task_runs/dashboard/counts",
                   {"flow_runs": {"id": {"any_": [parent]}},
                    "task_runs": {"start_time": {"after_": _at(-600), "before_": _at(60)}}})
    # Where in the twenty buckets the runs land depends on the second the test runs at.
    out["dashboard"]["body"] = {
        "buckets": len(buckets),
        "completed": sum(b["completed"] for b in buckets),
        "failed": sum(b["failed"] for b in buckets),
        "keys": sorted({k for b in buckets for k in b}),
    }
    call("dashboard_no_window", "POST", "/ui/task_runs/dashboard/counts", {"task_runs": {}})
    schema = {"type": "object", "properties": {
        "x": {"type": "integer"},
        "y": {"type": "object", "properties": {"z": {"type": "string"}}, "required": ["z"]},
        "l": {"type": "array", "items": {"type": "integer"}}}, "required": ["x"]}
    call("validate_errors", "POST", "/ui/schemas/validate",
         {"schema": schema, "values": {"y": {"z": 3}, "l": [1, "a", 2, "b"]}})
    call("validate_ok", "POST", "/ui/schemas/validate",
         {"schema": schema, "values": {"x": {"__prefect_kind": "json", "value": "5"}}})
    call("validate_bad_schema", "POST", "/ui/schemas/validate",
         {"schema": {"type": "nope"}, "values": {}})
    graph = call("graph", "GET", f"/flow_runs/{parent}/graph-v2")
    out["graph"]["body"] = {
        "nodes": sorted(
            [[norm(n["kind"]), norm(n["label"]), norm(n["artifacts"])] for _, n in graph["nodes"]]),
        "artifacts": norm(graph["artifacts"]),
        "keys": list(graph),
    }
    arts = call("artifacts_default_sort", "POST", "/artifacts/filter",
                {"artifacts": {"flow_run_id": {"any_": [parent]}}})
    ids = [a["id"] for a in arts]
    out["artifacts_default_sort"]["body"] = {"count": len(ids), "id_desc": ids == sorted(ids, reverse=True)}
    raw = '{"name": "ordered_%s", "value": {"zeta": 1, "alpha": {"y": 2, "b": 3}}}' % token
    r = api.post("/variables/", content=raw, headers={"content-type": "application/json"})
    out["key_order"] = {"status": r.status_code,
                        "body": json.dumps(r.json().get("value")) if r.status_code == 201 else r.text}
    settings = call("admin_settings", "GET", "/admin/settings")

    def key_tree(v):
        return {k: key_tree(x) for k, x in v.items()} if isinstance(v, dict) else None

    out["admin_settings"]["body"] = key_tree(settings)
    r = httpx.get(root.rstrip("/") + "/ui-settings", timeout=30)
    out["ui_settings"] = {"status": r.status_code, "keys": list(r.json())}
    return out
