"""Captures request/response pairs from a running reference Prefect 3.9.1 server.

Usage (with the compat venv, see scripts/compat.sh):
    PREFECT_HOME=/tmp/refhome PREFECT_SERVER_ANALYTICS_ENABLED=false \
        prefect server start --host 127.0.0.1 --port 4300 &
    python tests/compat/reference/capture_orion_core.py http://127.0.0.1:4300 > tests/compat/reference/orion-core.md

Ids and timestamps are kept verbatim.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx


def pick(*keys):
    """A transform that keeps only some keys of an object (or of each object of a list)."""
    def f(d):
        if isinstance(d, list):
            return [{k: x.get(k) for k in keys} for x in d]
        return {k: d.get(k) for k in keys}
    return f


RUN_KEYS = ("id", "name", "state_type", "state_name", "run_count", "expected_start_time",
            "start_time", "end_time", "total_run_time", "estimated_run_time", "state_id")

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4300"
c = httpx.Client(base_url=BASE, timeout=30)
out = []


def emit(s=""):
    out.append(s)


WIDTH = 100


def pretty(obj, indent=0, used=0):
    """JSON, indented; a value whose compact form fits stays on one line, and consecutive short
    members are packed several to a line (the output is still valid JSON).

    `used` is how many characters already stand on the first line (indent + key)."""
    flat = json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    if max(used, indent) + len(flat) <= WIDTH or not isinstance(obj, (dict, list)) or not obj:
        return flat
    pad = " " * (indent + 2)
    members = []  # (rendered text, packable)
    pairs = obj.items() if isinstance(obj, dict) else ((None, v) for v in obj)
    for k, v in pairs:
        key = "" if k is None else json.dumps(k, ensure_ascii=False) + ": "
        vflat = json.dumps(v, ensure_ascii=False, separators=(", ", ": "))
        if len(key) + len(vflat) <= 60:
            members.append((key + vflat, True))
        else:
            members.append((key + pretty(v, indent + 2, len(pad) + len(key)), False))
    lines, cur = [], ""
    for text, packable in members:
        if packable and (not cur or len(pad) + len(cur) + len(text) + 2 <= WIDTH):
            cur = f"{cur}, {text}" if cur else text
            continue
        if cur:
            lines.append(cur)
            cur = ""
        if packable:
            cur = text
        else:
            lines.append(text)
    if cur:
        lines.append(cur)
    o, c_ = ("{", "}") if isinstance(obj, dict) else ("[", "]")
    return o + "\n" + ",\n".join(pad + ln for ln in lines) + "\n" + " " * indent + c_


def cap(method, path, body=None, case="", raw=None, show=True, note=None,
        transform=None, headers=None):
    """Send one request, record it, return the httpx response."""
    kw = {}
    if raw is not None:
        kw["content"] = raw
        kw["headers"] = {"content-type": "application/json"}
    elif body is not None:
        kw["json"] = body
    if headers:
        kw.setdefault("headers", {}).update(headers)
    r = c.request(method, "/api" + path, **kw)
    if not show:
        return r
    emit(f"### {method} /api{path} — {case}")
    if note:
        emit(note)
    if raw is not None:
        emit("Request body (raw bytes):")
        emit("```")
        emit(raw)
        emit("```")
    elif body is not None:
        emit("Request:")
        emit("```json")
        emit(pretty(body))
        emit("```")
    ctype = r.headers.get("content-type", "")
    emit(f"→ **{r.status_code}** `content-type: {ctype or '(none)'}`")
    if r.content:
        try:
            data = r.json()
            if transform:
                data = transform(data)
            emit("```json")
            emit(pretty(data))
            emit("```")
        except Exception:
            emit("```")
            emit(r.text[:2000])
            emit("```")
    else:
        emit("(empty body)")
    emit()
    return r


def section(title, text=None):
    emit(f"## {title}")
    emit()
    if text:
        emit(text)
        emit()


def main():
    now = datetime.now(timezone.utc)
    emit("# Reference captures: Prefect 3.9.1 OSS server (orion core)")
    emit()
    emit(
        "Captured against `prefect server start` (prefect==3.9.1, SQLite, default settings,\n"
        f"analytics off) at {now.isoformat()} by `tests/compat/reference/capture_orion_core.py`.\n"
        "Requests were sent with httpx (no Prefect client headers, i.e. no\n"
        "`X-PREFECT-API-VERSION`). Ids and timestamps are verbatim. Status, content-type and\n"
        "full JSON bodies are shown; the JSON is re-indented (the server sends it compact).\n"
        "Part B shows what the server recorded after the real client ran\n"
        "`tests/compat/reference/capture_flow.py`."
    )
    emit()

    # ------------------------------------------------------------------ root
    section("Part A.0 — root endpoints")
    cap("GET", "/health", case="health")
    cap("GET", "/ready", case="ready")
    cap("GET", "/admin/version", case="server version")
    cap("GET", "/version", case="API version")
    cap("GET", "/hello", case="hello")

    # ------------------------------------------------------------------ flows
    section("Part A.1 — flows")
    r = cap("POST", "/flows/", {"name": "ref-flow"}, "new flow (201)")
    flow = r.json()
    fid = flow["id"]
    cap("POST", "/flows/", {"name": "ref-flow", "tags": ["ignored?"]},
        "same name again (200, existing flow returned unchanged)")
    cap("POST", "/flows/", {"name": "ref-flow-x", "bogus": 1},
        "unknown key (extra=forbid)")
    cap("POST", "/flows/", {}, "missing name")
    cap("GET", f"/flows/{fid}", case="by id")
    cap("GET", "/flows/name/ref-flow", case="by name")
    cap("GET", "/flows/name/no-such-flow", case="unknown name")
    cap("GET", f"/flows/{uuid.uuid4()}", case="unknown id (404)")
    cap("GET", "/flows/not-a-uuid", case="id that is not a UUID")
    cap("POST", "/flows/filter", {}, "empty body")
    cap("POST", "/flows/filter", {"limit": 500}, "limit above the maximum (422)")
    cap("POST", "/flows/filter", {"limit": -1}, "negative limit")
    cap("POST", "/flows/filter",
        {"flows": {"name": {"like_": "ref-fl"}}, "sort": "NAME_DESC", "limit": 5, "offset": 0},
        "name like_ + sort")
    cap("PATCH", f"/flows/{fid}", {"tags": ["t1", "t2"]}, "update tags (204)")
    cap("GET", f"/flows/{fid}", case="after PATCH")
    cap("PATCH", f"/flows/{uuid.uuid4()}", {"tags": []}, "unknown id")
    cap("POST", "/flows/count", {}, "count, empty body")
    cap("POST", "/flows/paginate", {}, "paginate, empty body")
    cap("POST", "/flows/paginate", {"page": 2, "limit": 1}, "paginate, page 2 of size 1")

    # ------------------------------------------------------------------ flow runs
    section("Part A.2 — flow runs")
    r = cap("POST", "/flow_runs/", {"flow_id": fid, "state": {"type": "PENDING"}},
            "with state PENDING (201)",
            note="Note the generated `name` (adjective-animal, coolname), `expected_start_time` = "
                 "the state timestamp, `state_name` from the type, `run_count` 0.")
    fr1 = r.json()
    r = cap("POST", "/flow_runs/", {"flow_id": fid}, "without state (201)")
    fr2 = r.json()
    cap("POST", "/flow_runs/",
        {"flow_id": fid, "idempotency_key": "idem-1", "name": "named-run",
         "parameters": {"x": 1}, "tags": ["a", "b"], "labels": {"team": "x"}},
        "with idempotency_key, name, parameters, tags, labels — first (201)")
    cap("POST", "/flow_runs/",
        {"flow_id": fid, "idempotency_key": "idem-1", "name": "other-name"},
        "same idempotency_key again (200, original run; some keys shown)",
        transform=pick("id", "name", "idempotency_key", "parameters", "tags", "labels"))
    cap("POST", "/flow_runs/", {"flow_id": str(uuid.uuid4()), "state": {"type": "PENDING"}},
        "unknown flow_id")
    cap("POST", "/flow_runs/", raw='{"flow_id": ', case="malformed JSON body")
    cap("POST", "/flow_runs/", {"flow_id": 5}, "flow_id is an int (422)")
    cap("POST", "/flow_runs/", {"flow_id": fid, "bogus": 1}, "unknown top-level key")
    cap("POST", "/flow_runs/", {"flow_id": fid, "state": {"type": "NOPE"}}, "bad state type")
    cap("GET", f"/flow_runs/{fr1['id']}", case="by id")
    cap("GET", f"/flow_runs/{uuid.uuid4()}", case="unknown id")

    section("Part A.3 — set_state sequences (flow runs)")
    rid = fr1["id"]
    cap("POST", f"/flow_runs/{rid}/set_state", {"state": {"type": "RUNNING"}},
        "PENDING→RUNNING (201 ACCEPT)")
    cap("GET", f"/flow_runs/{rid}", case="after RUNNING (some keys shown)", transform=pick(*RUN_KEYS))
    cap("POST", f"/flow_runs/{rid}/set_state",
        {"state": {"type": "COMPLETED", "message": "all done"}},
        "RUNNING→COMPLETED (201 ACCEPT)")
    cap("GET", f"/flow_runs/{rid}", case="after COMPLETED (some keys shown)", transform=pick(*RUN_KEYS))
    cap("POST", f"/flow_runs/{rid}/set_state", {"state": {"type": "RUNNING"}},
        "terminal (COMPLETED, no persisted result)→RUNNING")
    rid2 = fr2["id"]
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "RUNNING"}},
        "no state→RUNNING")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "RUNNING"}},
        "RUNNING→RUNNING again")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "RUNNING", "bogus": 1}},
        "unknown key inside state (422)")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "RUNNING"}, "bogus": 1},
        "unknown top-level key")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "PENDING"}},
        "RUNNING→PENDING")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "FAILED"}},
        "RUNNING→FAILED (no retries)")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "CANCELLING"}},
        "terminal FAILED→CANCELLING")
    cap("POST", f"/flow_runs/{rid2}/set_state", {"state": {"type": "RUNNING"}, "force": True},
        "FAILED→RUNNING with force=true")
    cap("POST", f"/flow_runs/{uuid.uuid4()}/set_state", {"state": {"type": "RUNNING"}},
        "unknown run (404)")
    r = cap("GET", f"/flow_run_states/?flow_run_id={rid}", case="state history of a run")
    sid = r.json()[0]["id"]
    cap("GET", f"/flow_run_states/{sid}", case="one state by id")
    cap("GET", f"/flow_run_states/{uuid.uuid4()}", case="unknown state id")
    cap("GET", "/flow_run_states/", case="missing flow_run_id query param")

    # a run with a retry policy
    r = cap("POST", "/flow_runs/", {"flow_id": fid, "state": {"type": "RUNNING"},
                                    "empirical_policy": {"retries": 1, "retry_delay": 0}},
            "created RUNNING with retries=1", show=False)
    rr = r.json()["id"]
    cap("POST", f"/flow_runs/{rr}/set_state", {"state": {"type": "FAILED", "message": "boom"}},
        "RUNNING→FAILED with retries left (REJECT → AwaitingRetry, 201)")

    section("Part A.4 — flow-run queries")
    cap("POST", "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_DESC", "limit": 3},
        "sort EXPECTED_START_TIME_DESC, limit 3 (some keys shown)",
        transform=pick("id", "name", "expected_start_time", "state_name"))
    cap("POST", "/flow_runs/filter",
        {"flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING"]}}}, "sort": "NAME_ASC"},
        "state type filter + NAME_ASC (some keys shown)", transform=pick("name", "state_type"))
    cap("POST", "/flow_runs/filter",
        {"flow_runs": {"state": {"name": {"any_": ["AwaitingRetry"]}}}},
        "state name filter (some keys shown)", transform=pick(*RUN_KEYS))
    cap("POST", "/flow_runs/filter",
        {"flow_runs": {"tags": {"all_": ["a"]}, "name": {"like_": "named"}}, "limit": 3},
        "tags all_ + name like_", transform=lambda d: [x["name"] for x in d])
    cap("POST", "/flow_runs/filter", {"sort": "NOPE"}, "bad sort value")
    cap("POST", "/flow_runs/count", {}, "count all")
    cap("POST", "/flow_runs/count",
        {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}, "count RUNNING")
    cap("POST", "/flow_runs/paginate", {"limit": 1, "page": 1},
        "paginate limit 1 (results: some keys shown)",
        transform=lambda d: {**d, "results": pick(*RUN_KEYS)(d["results"])})
    hs = (now - timedelta(minutes=50)).isoformat()
    he = (now + timedelta(minutes=10)).isoformat()
    cap("POST", "/flow_runs/history",
        {"history_start": hs, "history_end": he, "history_interval_seconds": 600},
        "1-hour window, 10-minute interval")
    cap("POST", "/flow_runs/history",
        {"history_start": hs, "history_end": he, "history_interval_seconds": 0.5},
        "interval too small")

    # ------------------------------------------------------------------ task runs
    section("Part A.5 — task runs (REST)")
    r = cap("POST", "/flow_runs/", {"flow_id": fid, "state": {"type": "RUNNING"}},
            "a RUNNING flow run to hold task runs", show=False)
    tfr = r.json()["id"]
    tr_body = {"flow_run_id": tfr, "task_key": "ref-task-key", "dynamic_key": "0",
               "name": "ref-task-0", "state": {"type": "PENDING"}}
    r = cap("POST", "/task_runs/", tr_body, "new (201)")
    tr = r.json()
    cap("POST", "/task_runs/", tr_body, "same flow_run_id/task_key/dynamic_key again (200; some keys shown)",
        transform=pick("id", "name", "state_type", "created"))
    cap("POST", "/task_runs/", {"task_key": "k"}, "missing dynamic_key")
    cap("POST", "/task_runs/",
        {"flow_run_id": str(uuid.uuid4()), "task_key": "k", "dynamic_key": "0"},
        "unknown flow_run_id")
    cap("GET", f"/task_runs/{tr['id']}", case="by id")
    cap("GET", f"/task_runs/{uuid.uuid4()}", case="unknown id")
    cap("POST", f"/task_runs/{tr['id']}/set_state", {"state": {"type": "RUNNING"}},
        "PENDING→RUNNING")
    cap("POST", f"/task_runs/{tr['id']}/set_state", {"state": {"type": "COMPLETED"}},
        "RUNNING→COMPLETED")
    cap("GET", f"/task_runs/{tr['id']}", case="after COMPLETED (some keys shown)",
        transform=pick(*RUN_KEYS, "flow_run_run_count"))
    r = cap("POST", "/flow_runs/", {"flow_id": fid, "state": {"type": "COMPLETED"}},
            "a COMPLETED flow run", show=False)
    done_fr = r.json()["id"]
    r = cap("POST", "/task_runs/",
            {"flow_run_id": done_fr, "task_key": "k2", "dynamic_key": "0", "state": {"type": "PENDING"}},
            "task run in a COMPLETED flow run", show=False)
    cap("POST", f"/task_runs/{r.json()['id']}/set_state", {"state": {"type": "RUNNING"}},
        "PENDING→RUNNING while the flow run is COMPLETED")
    cap("POST", "/task_runs/filter",
        {"flow_runs": {"id": {"any_": [tfr]}}, "sort": "EXPECTED_START_TIME_DESC"},
        "filter by flow run id (some keys shown)",
        transform=pick("id", "name", "task_key", "state_name", "labels"))
    cap("POST", "/task_runs/count", {}, "count all")
    cap("GET", f"/task_run_states/?task_run_id={tr['id']}", case="state history")
    cap("GET", f"/flow_runs/{tfr}/graph", case="graph (v1)")
    cap("GET", f"/flow_runs/{tfr}/graph-v2", case="graph-v2")

    # ------------------------------------------------------------------ mutate/delete
    section("Part A.6 — flow-run updates and deletes")
    cap("PATCH", f"/flow_runs/{rid}", {"name": "renamed-run", "tags": ["x"]}, "rename + tags (204)")
    cap("PATCH", f"/flow_runs/{rid}", {"state_type": "RUNNING"}, "unknown field")
    cap("PATCH", f"/flow_runs/{rid}/labels", {"env": "dev", "n": 1}, "labels (204)")
    cap("GET", f"/flow_runs/{rid}", case="after PATCH + labels",
        transform=lambda d: {k: d[k] for k in ("name", "tags", "labels")})
    cap("PATCH", f"/flow_runs/{uuid.uuid4()}/labels", {"a": "b"}, "labels of unknown run")
    cap("DELETE", f"/flow_runs/{rid2}", case="delete (204)")
    cap("GET", f"/flow_runs/{rid2}", case="after delete (404)")
    cap("DELETE", f"/flow_runs/{rid2}", case="delete again")
    cap("POST", "/flow_runs/bulk_delete", {"flow_runs": {"id": {"any_": [rr, str(uuid.uuid4())]}}},
        "bulk delete by ids")

    # ------------------------------------------------------------------ logs and misc
    section("Part A.7 — logs, admin, CSRF, collections")
    ts = datetime.now(timezone.utc).isoformat()
    cap("POST", "/logs/", [
        {"name": "ref.logger", "level": 20, "message": "hello one", "timestamp": ts,
         "flow_run_id": tfr, "task_run_id": None},
        {"name": "ref.logger", "level": 40, "message": "hello two", "timestamp": ts,
         "flow_run_id": tfr, "task_run_id": tr["id"]},
    ], "two logs")
    cap("POST", "/logs/", [{"name": "x", "level": 20, "message": "m"}], "log without timestamp")
    cap("POST", "/logs/filter", {}, "default sort",
        transform=lambda d: d)
    cap("POST", "/logs/filter", {"logs": {"task_run_id": {"any_": [tr["id"]]}},
                                 "sort": "TIMESTAMP_DESC"}, "by task_run_id")
    cap("GET", "/admin/storage", case="server default result storage")
    cap("GET", "/admin/settings", case="top-level keys only",
        transform=lambda d: sorted(d.keys()))
    cap("GET", "/csrf-token?client=x", case="CSRF disabled")
    cap("GET", "/csrf-token", case="no client param")
    try:
        r = c.get("/api/collections/views/aggregate-worker-metadata", timeout=60)
        emit("### GET /api/collections/views/aggregate-worker-metadata — status only")
        body = r.json()
        emit(f"→ **{r.status_code}**; body is a JSON object with top-level keys "
             f"`{sorted(body.keys()) if isinstance(body, dict) else type(body).__name__}`"
             " (this server has no internet access, so it served its bundled copy)")
        emit()
    except Exception as e:  # noqa: BLE001
        emit(f"(aggregate-worker-metadata failed: {e!r})")

    # ------------------------------------------------------------------ real flow
    part_b()
    print("\n".join(out))


def part_b():
    section(
        "Part B — what the server recorded for a real flow script",
        "`tests/compat/reference/capture_flow.py` (flow `ref-parent`, `log_prints=True`, "
        "`double.map(range(3))` tagged `ref-task-tag`, `flaky` retried once, subflow `ref-child`, "
        "run under `tags(\"ref-flow-tag\")`) run with `PREFECT_API_URL=<ref>/api`.",
    )
    env = dict(os.environ, PREFECT_API_URL=BASE + "/api")
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.run([sys.executable, os.path.join(here, "capture_flow.py")],
                       env=env, capture_output=True, text=True, timeout=300)
    emit(f"Script exit code: {p.returncode}; stdout tail: `{p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''}`")
    emit()
    time.sleep(8)  # task runs and events are written asynchronously

    r = c.post("/api/flow_runs/filter",
               json={"flows": {"name": {"any_": ["ref-parent", "ref-child"]}},
                     "sort": "EXPECTED_START_TIME_ASC"})
    runs = r.json()
    parent = next(x for x in runs if x["parent_task_run_id"] is None)
    child = next(x for x in runs if x["parent_task_run_id"] is not None)
    cap("POST", "/flow_runs/filter",
        {"flows": {"name": {"any_": ["ref-parent", "ref-child"]}}, "sort": "EXPECTED_START_TIME_ASC"},
        "the parent and the child flow run (full)")
    cap("GET", f"/flow_run_states/?flow_run_id={parent['id']}", case="parent flow-run state history")
    r = c.post("/api/task_runs/filter",
               json={"flow_runs": {"id": {"any_": [parent["id"]]}}, "sort": "EXPECTED_START_TIME_ASC"})
    cap("POST", "/task_runs/filter",
        {"flow_runs": {"id": {"any_": [parent["id"]]}}, "sort": "EXPECTED_START_TIME_ASC"},
        "task runs of the parent (summary: name, task_key, dynamic_key, state, run_count, tags)",
        transform=lambda d: [
            {k: x[k] for k in ("id", "name", "task_key", "dynamic_key", "state_type", "state_name",
                               "run_count", "flow_run_run_count", "tags", "labels")}
            for x in d])
    trs = r.json()
    flaky = next(x for x in trs if x["name"].startswith("flaky"))
    sub = next(x for x in trs if x["id"] == child["parent_task_run_id"])
    mapped = next(x for x in trs if x["name"].startswith("double"))
    cap("GET", f"/task_runs/{flaky['id']}", case="the retried task run, full JSON")
    cap("GET", f"/task_run_states/?task_run_id={flaky['id']}", case="its state history")
    cap("GET", f"/task_runs/{mapped['id']}", case="one mapped task run, full JSON (task_inputs)")
    cap("GET", f"/task_runs/{sub['id']}", case="the subflow's parent task run (created by REST)")
    cap("GET", f"/task_run_states/?task_run_id={sub['id']}", case="its state history")
    cap("POST", "/logs/filter",
        {"logs": {"flow_run_id": {"any_": [parent["id"]]}}, "limit": 20},
        "logs of the parent run (first one full; then level/name/task_run_id/message of each)",
        transform=lambda d: [d[0]] + [
            {k: x[k] for k in ("level", "name", "task_run_id", "message")} for x in d[1:]])
    cap("GET", f"/flow_runs/{parent['id']}/graph-v2", case="graph-v2 of the parent")

    r = c.post("/api/events/filter", json={"limit": 50})
    body = r.json()
    evs = body["events"]
    emit("### POST /api/events/filter — `{\"limit\": 50}`")
    emit(f"→ **{r.status_code}**; top-level keys `{sorted(body.keys())}`, total={body.get('total')}, "
         f"next_page={body.get('next_page')!r}; {len(evs)} events. Event names in returned order:")
    emit("```")
    emit("\n".join(f"{e['occurred']} {e['event']} {e['resource']['prefect.resource.id']}" for e in evs))
    emit("```")
    emit()
    parent_res = f"prefect.flow-run.{parent['id']}"
    for name, pred in [
        ("prefect.flow-run.Running (parent)",
         lambda e: e["event"] == "prefect.flow-run.Running" and e["resource"]["prefect.resource.id"] == parent_res),
        ("prefect.flow-run.Running (child subflow)",
         lambda e: e["event"] == "prefect.flow-run.Running" and e["resource"]["prefect.resource.id"] != parent_res),
        ("prefect.task-run.Completed (a mapped, tagged task)",
         lambda e: e["event"] == "prefect.task-run.Completed"
         and e["resource"].get("prefect.resource.name", "").startswith("double")),
        ("prefect.task-run.Retrying",
         lambda e: e["event"] == "prefect.task-run.Retrying"),
        ("prefect.flow-run.Pending (parent, emitted on POST /flow_runs/)",
         lambda e: e["event"] == "prefect.flow-run.Pending" and e["resource"]["prefect.resource.id"] == parent_res),
        ("prefect.flow.created", lambda e: e["event"] == "prefect.flow.created"),
        ("prefect.flow.updated (from PATCH /flows/{id} in part A)",
         lambda e: e["event"] == "prefect.flow.updated"),
    ]:
        ev = next((e for e in evs if pred(e)), None)
        emit(f"#### Event {name}")
        emit("```json")
        emit(pretty(ev))
        emit("```")
        emit()


if __name__ == "__main__":
    main()
