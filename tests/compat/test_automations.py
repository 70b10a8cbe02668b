"""Automations through the real client: the SDK (`Automation(...).create()`, `.read()`,
`.disable()`, `.enable()`, `.update()`, `.delete()`), the CLI (`prefect automation ls|inspect|pause|resume|
delete|create`), and deployment triggers (`triggers:` in prefect.yaml through `prefect deploy`,
which replaces the deployment's own automations on every deploy)."""

import json
import sys
import uuid

import conftest
from test_deployments import api, http, project, run_cli, run_python, server  # noqa: F401 (fixtures)
from test_deployments import output_of, runs_of, start_worker, wait_final

SDK = """
import json, sys
from prefect.automations import Automation, EventTrigger, Posture, DoNothing, CompoundTrigger
name = sys.argv[1]
a = Automation(
    name=name,
    description="compat",
    trigger=EventTrigger(expect={"compat.thing.happened"}, match={"prefect.resource.id": "compat.*"},
                         posture=Posture.Reactive, threshold=2, within=60),
    actions=[DoNothing()],
).create()
out = {"id": str(a.id), "trigger_within": a.trigger.within.total_seconds()}
r = Automation.read(id=a.id)
out["read_name"] = r.name
out["by_name"] = str(Automation.read(name=name).id)
a.disable(); out["paused"] = Automation.read(id=a.id).enabled
a.enable(); out["resumed"] = Automation.read(id=a.id).enabled
a.description = "changed"; a.update(); out["updated"] = Automation.read(id=a.id).description
c = Automation(
    name=name + "-compound",
    trigger=CompoundTrigger(require="all", within=120, triggers=[
        EventTrigger(expect={"a.b"}, posture=Posture.Reactive),
        EventTrigger(expect={"c.d"}, posture=Posture.Proactive, within=30),
    ]),
    actions=[DoNothing()],
).create()
out["compound_kinds"] = [t.type for t in Automation.read(id=c.id).trigger.triggers]
out["deleted"] = a.delete()
try:
    Automation.read(id=a.id)
    out["gone"] = False
except ValueError:
    out["gone"] = True
print("OUT", json.dumps(out))
"""


def _out(text: str) -> dict:
    line = [ln for ln in text.splitlines() if ln.startswith("OUT ")][-1]
    return json.loads(line[4:])


def test_the_automation_sdk(server):  # noqa: F811
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    out = _out(run_python(server, SDK, name))
    assert out["read_name"] == name
    assert out["by_name"] == out["id"]
    assert out["trigger_within"] == 60
    assert (out["paused"], out["resumed"]) == (False, True)
    assert out["updated"] == "changed"
    assert out["compound_kinds"] == ["event", "event"]
    assert out["deleted"] is True
    assert out["gone"] is True


def test_the_automation_cli(server, http, tmp_path):  # noqa: F811
    name = f"cli-{uuid.uuid4().hex[:8]}"
    spec = {
        "name": name,
        "trigger": {"type": "event", "expect": ["compat.cli"], "posture": "Reactive", "threshold": 1, "within": 0},
        "actions": [{"type": "do-nothing"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(spec))
    run_cli(server, "automation", "create", "--from-file", str(tmp_path / "a.json"))
    assert name in run_cli(server, "automation", "ls").stdout
    shown = run_cli(server, "automation", "inspect", name, "--json").stdout
    inspected = json.loads(shown[min(i for i in (shown.find("["), shown.find("{")) if i >= 0) :])
    inspected = inspected[0] if isinstance(inspected, list) else inspected
    assert inspected["name"] == name
    run_cli(server, "automation", "pause", name)
    found = http.post("/automations/filter", json={"automations": {"name": {"any_": [name]}}}).json()
    assert [a["enabled"] for a in found] == [False]
    run_cli(server, "automation", "resume", name)
    found = http.post("/automations/filter", json={"automations": {"name": {"any_": [name]}}}).json()
    assert [a["enabled"] for a in found] == [True]
    run_cli(server, "automation", "delete", name)
    assert http.post("/automations/filter", json={"automations": {"name": {"any_": [name]}}}).json() == []


def test_deployment_triggers_from_prefect_yaml_replace_the_deployments_automations(server, api, http, project):  # noqa: F811
    tok = uuid.uuid4().hex[:8]
    pool = f"wp-auto-{tok}"
    run_cli(server, "work-pool", "create", pool, "--type", "process")

    def deploy(expect: str):
        (project / "prefect.yaml").write_text(
            json.dumps(
                {
                    "name": "compat-automations",
                    "prefect-version": "3.9.1",
                    "build": None,
                    "push": None,
                    "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}],
                    "deployments": [
                        {
                            "name": f"trig-{tok}",
                            "entrypoint": "flow.py:my_flow",
                            "parameters": {"n": 1},
                            "work_pool": {"name": pool, "work_queue_name": None, "job_variables": {}},
                            "triggers": [
                                {
                                    "enabled": True,
                                    "match": {"prefect.resource.id": "compat.upstream.*"},
                                    "expect": [expect],
                                    "parameters": {"n": 7},
                                }
                            ],
                        }
                    ],
                }
            )
        )
        run_cli(server, "--no-prompt", "deploy", "--name", f"trig-{tok}", cwd=project)

    deploy("compat.upstream.done")
    d = api.read_deployment_by_name(f"my-flow/trig-{tok}")
    owner = f"prefect.deployment.{d.id}"

    def owned():
        r = http.get(f"/automations/related-to/{owner}")
        assert r.status_code == 200, r.text
        return r.json()

    first = owned()
    assert len(first) == 1, first
    a = first[0]
    assert a["trigger"]["expect"] == ["compat.upstream.done"]
    assert a["trigger"]["match"] == {"prefect.resource.id": "compat.upstream.*"}
    (action,) = a["actions"]
    assert action["type"] == "run-deployment"
    assert action["source"] == "selected" and action["deployment_id"] == str(d.id)
    assert action["parameters"] == {"n": 7}

    # Deploying again replaces the deployment's automation rather than adding one.
    deploy("compat.upstream.finished")
    again = conftest.wait_for(owned, lambda v: len(v) == 1 and v[0]["id"] != a["id"], "the replaced trigger")
    assert again[0]["trigger"]["expect"] == ["compat.upstream.finished"]

    # The trigger runs the deployment on a process worker: the old event no longer does, the new one does.
    worker = start_worker(server, pool)
    try:
        run_python(server, EMIT, "compat.upstream.done", f"compat.upstream.{tok}")
        run_python(server, EMIT, "compat.upstream.finished", f"compat.upstream.{tok}")
        (run,) = conftest.wait_for(lambda: runs_of(api, d.id), lambda rs: len(rs) >= 1, "the triggered run", 60)
        done = wait_final(api, run.id, worker=worker)
        assert done.state_type.value == "COMPLETED", done.state
        assert done.parameters == {"n": 7}, done.parameters
        assert done.created_by and done.created_by.type == "AUTOMATION", done.created_by
        assert output_of(project, run.id)["n"] == 7
        assert len(runs_of(api, d.id)) == 1
    finally:
        worker.interrupt()


FIRING = """
import json, sys, time
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.automations import Automation, EventTrigger, Posture, PauseDeployment, RunDeployment

name = sys.argv[1]

@flow(name=name)
def boom():
    raise ValueError("boom")

with get_client(sync_client=True) as c:
    flow_id = c.create_flow_from_name(name)
    dep_id = c.create_deployment(flow_id=flow_id, name="target", parameters={"n": 1})
Automation(
    name=name,
    trigger=EventTrigger(
        expect={"prefect.flow-run.Failed"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": name},
        posture=Posture.Reactive, threshold=1, within=0,
    ),
    actions=[
        RunDeployment(source="selected", deployment_id=dep_id, parameters={"failed": "{{ flow_run.name }}"}),
        PauseDeployment(source="selected", deployment_id=dep_id),
    ],
).create()
try:
    boom(return_state=False)
except ValueError:
    pass
out = {}
with get_client(sync_client=True) as c:
    deadline = time.time() + 30
    while True:
        d = c.read_deployment(dep_id)
        runs = c.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])))
        if (d.paused and runs) or time.time() > deadline:
            break
        time.sleep(0.5)
    failed = [r for r in c.read_flow_runs() if r.flow_id == flow_id and r.deployment_id is None]
    out["paused"] = d.paused
    out["runs"] = len(runs)
    out["created_by"] = runs[0].created_by.type if runs and runs[0].created_by else None
    out["parameters"] = runs[0].parameters if runs else None
    out["failed_name"] = failed[0].name if failed else None
print("OUT", json.dumps(out))
"""


def test_an_automation_fires_when_a_flow_fails(server):  # noqa: F811
    name = f"fires-{uuid.uuid4().hex[:8]}"
    out = _out(run_python(server, FIRING, name))
    assert out["paused"] is True, out
    assert out["runs"] == 1, out
    assert out["created_by"] == "AUTOMATION", out
    assert out["parameters"] == {"n": 1, "failed": out["failed_name"]}, out


NOTIFYING = """
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from prefect import flow
from prefect.automations import Automation, EventTrigger, Posture, CallWebhook, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.webhook import Webhook

name = sys.argv[1]
received = []

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        received.append({"path": self.path, "body": body, "x": self.headers.get("x-compat")})
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"thanks")
    def log_message(self, *a):
        pass

srv = HTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{srv.server_port}"

hook = Webhook(method="POST", url=f"{base}/webhook", headers={"x-compat": "yes"})
hook_id = hook.save(name + "-hook")
note = CustomWebhookNotificationBlock(
    name=name, url=f"{base}/notify", json_data={"text": "{{subject}}|{{body}}", "who": "{{name}}"}
)
note_id = note.save(name + "-note")

@flow(name=name)
def boom():
    raise ValueError("boom")

Automation(
    name=name,
    trigger=EventTrigger(
        expect={"prefect.flow-run.Failed"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": name},
        posture=Posture.Reactive, threshold=1, within=0,
    ),
    actions=[
        CallWebhook(block_document_id=hook_id, payload='{"failed": "{{ event.resource.id }}"}'),
        SendNotification(block_document_id=note_id, subject="Run failed", body="{{ flow_run.name }} failed"),
    ],
).create()
state = boom(return_state=True)
run_id = str(state.state_details.flow_run_id)
deadline = time.time() + 30
while len(received) < 2 and time.time() < deadline:
    time.sleep(0.3)
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as c:
    run_name = c.read_flow_run(run_id).name
print("OUT", json.dumps({"received": sorted(received, key=lambda r: r["path"]), "run_id": run_id, "run_name": run_name}))
"""


def test_an_automation_calls_a_webhook_and_sends_a_notification(server):  # noqa: F811
    name = f"notify-{uuid.uuid4().hex[:8]}"
    out = _out(run_python(server, NOTIFYING, name))
    notify, webhook = out["received"]
    assert webhook["path"] == "/webhook", out
    assert webhook["x"] == "yes", out
    assert json.loads(webhook["body"]) == {"failed": f"prefect.flow-run.{out['run_id']}"}, out
    assert notify["path"] == "/notify", out
    assert json.loads(notify["body"]) == {"text": f"Run failed|{out['run_name']} failed", "who": name}, out


SERVE_TRIGGERED = """
import sys
sys.path.insert(0, sys.argv[1])
from flow import my_flow
from prefect.events import DeploymentEventTrigger
name, expect = sys.argv[2], sys.argv[3]
my_flow.serve(
    name=name,
    parameters={"n": 1},
    triggers=[DeploymentEventTrigger(expect={expect}, parameters={"n": 7, "label": "{{ event.resource.id }}"})],
)
"""

EMIT = """
import sys
from prefect.events import emit_event
emit_event(event=sys.argv[1], resource={"prefect.resource.id": sys.argv[2]})
"""

SEQUENCE = """
import json, sys, time
from prefect.automations import Automation, SequenceTrigger, EventTrigger, Posture, DoNothing
from prefect.events import emit_event
from prefect.client.orchestration import get_client
tag = sys.argv[1]
a = Automation(
    name=f"seq-{tag}",
    trigger=SequenceTrigger(within=120, triggers=[
        EventTrigger(expect={f"{tag}.first"}, posture=Posture.Reactive),
        EventTrigger(expect={f"{tag}.second"}, posture=Posture.Reactive),
    ]),
    actions=[DoNothing()],
).create()
time.sleep(2)
def fired():
    with get_client(sync_client=True) as c:
        r = c.request("POST", "/events/filter", json={"filter": {"event": {"name": ["prefect.automation.triggered"]}, "resource": {"id": [f"prefect.automation.{a.id}"]}}})
        return len(r.json()["events"])
emit_event(event=f"{tag}.second", resource={"prefect.resource.id": "x"})
time.sleep(1)
emit_event(event=f"{tag}.first", resource={"prefect.resource.id": "x"})
time.sleep(4)
out = {"out_of_order": fired()}
emit_event(event=f"{tag}.second", resource={"prefect.resource.id": "x"})
deadline = time.time() + 30
while fired() < 1 and time.time() < deadline:
    time.sleep(0.5)
out["in_order"] = fired()
print("OUT", json.dumps(out))
"""


def test_a_sequence_trigger_fires_only_in_order(server):  # noqa: F811
    out = _out(run_python(server, SEQUENCE, uuid.uuid4().hex[:8]))
    assert out == {"out_of_order": 0, "in_order": 1}, out


def test_a_served_deployments_trigger_runs_it_on_the_served_process(server, api, project):  # noqa: F811
    from test_deployments import Background, _deployment_named, runs_of

    name = f"triggered-{uuid.uuid4().hex[:8]}"
    expect = f"compat.{name}.go"
    proc = Background(server, [sys.executable, "-c", SERVE_TRIGGERED, str(project), name, expect], cwd=project)
    try:
        d = _deployment_named(api, name, proc)
        conftest.wait_for(
            lambda: http_related(server, d.id), lambda n: n >= 1, "the deployment's automation", 60
        )
        run_python(server, EMIT, expect, f"compat.thing.{name}")
        done = conftest.wait_for(
            lambda: [r for r in runs_of(api, d.id) if r.state_type.value == "COMPLETED"],
            lambda rs: len(rs) >= 1,
            "the triggered run to complete on the served process",
            90,
        )
        assert done[0].parameters == {"n": 7, "label": f"compat.thing.{name}"}, done[0].parameters
        assert done[0].created_by and done[0].created_by.type == "AUTOMATION"
        record = json.loads((project / "out" / f"{done[0].id}.json").read_text())
        assert record["label"] == f"compat.thing.{name}" and record["n"] == 7
    finally:
        proc.interrupt()


def http_related(server, deployment_id) -> int:
    import httpx

    r = httpx.get(f"{server}/automations/related-to/prefect.deployment.{deployment_id}", timeout=10)
    return len(r.json()) if r.status_code == 200 else 0


FIRINGS = """
def fired(a):
    with get_client(sync_client=True) as c:
        r = c.request("POST", "/events/filter", json={"filter": {
            "event": {"name": ["prefect.automation.triggered"]},
            "resource": {"id": [f"prefect.automation.{a.id}"]},
        }})
        return len(r.json()["events"])
"""

PROACTIVE = """
import json, sys, time
from prefect.automations import Automation, EventTrigger, Posture, DoNothing
from prefect.events import emit_event
from prefect.client.orchestration import get_client
""" + FIRINGS + """
tag = sys.argv[1]
a = Automation(
    name=f"proactive-{tag}",
    trigger=EventTrigger(
        after={f"{tag}.started"}, expect={f"{tag}.finished"}, for_each={"prefect.resource.id"},
        posture=Posture.Proactive, threshold=1, within=10,
    ),
    actions=[DoNothing()],
).create()
time.sleep(2)
# One job finishes in time, the other never does: only the silent one fires.
emit_event(event=f"{tag}.started", resource={"prefect.resource.id": f"job.{tag}.quiet"})
emit_event(event=f"{tag}.started", resource={"prefect.resource.id": f"job.{tag}.ok"})
time.sleep(1)
emit_event(event=f"{tag}.finished", resource={"prefect.resource.id": f"job.{tag}.ok"})
time.sleep(5)
out = {"before_within": fired(a)}
deadline = time.time() + 40
while fired(a) < 1 and time.time() < deadline:
    time.sleep(0.5)
time.sleep(6)
out["after_within"] = fired(a)
print("OUT", json.dumps(out))
"""


def test_a_proactive_trigger_fires_when_the_expected_event_does_not_come(server):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    out = _out(run_python(server, PROACTIVE, tag))
    assert out["before_within"] == 0, out
    assert out["after_within"] == 1, out


COMPOUND = """
import json, sys, time
from prefect.automations import Automation, CompoundTrigger, EventTrigger, Posture, DoNothing
from prefect.events import emit_event
from prefect.client.orchestration import get_client
""" + FIRINGS + """
tag = sys.argv[1]
a = Automation(
    name=f"compound-{tag}",
    trigger=CompoundTrigger(require="all", within=120, triggers=[
        EventTrigger(expect={f"{tag}.extract"}, posture=Posture.Reactive),
        EventTrigger(expect={f"{tag}.load"}, posture=Posture.Reactive),
    ]),
    actions=[DoNothing()],
).create()
time.sleep(2)
emit_event(event=f"{tag}.extract", resource={"prefect.resource.id": "x"})
emit_event(event=f"{tag}.extract", resource={"prefect.resource.id": "x"})
time.sleep(4)
out = {"one_of_two": fired(a)}
emit_event(event=f"{tag}.load", resource={"prefect.resource.id": "x"})
deadline = time.time() + 30
while fired(a) < 1 and time.time() < deadline:
    time.sleep(0.5)
time.sleep(3)
out["both"] = fired(a)
print("OUT", json.dumps(out))
"""


def test_a_compound_trigger_fires_when_all_of_its_triggers_have(server):  # noqa: F811
    out = _out(run_python(server, COMPOUND, uuid.uuid4().hex[:8]))
    assert out == {"one_of_two": 0, "both": 1}, out
