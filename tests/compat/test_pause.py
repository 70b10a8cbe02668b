"""Pausing for input with the real client: a flow calls `pause_flow_run(wait_for_input=...)`,
another process resumes it with `resume_flow_run(id, run_input=...)` (first with input that
fails the schema, then with good input), and the flow receives the input."""

import json
import os
import subprocess
import sys
import time

import conftest
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

EXTRA = conftest.HERE / "flows" / "scenarios_extra.py"

RESUME = """
import json, sys, uuid
from prefect.flow_runs import resume_flow_run
resume_flow_run(uuid.UUID(sys.argv[1]), run_input=json.loads(sys.argv[2]))
print("RESUMED")
"""


def resume_in_another_process(run_id, run_input):
    return subprocess.run(
        [sys.executable, "-c", RESUME, str(run_id), json.dumps(run_input)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_paused_flow_receives_input_from_another_process(client, token):
    flow_proc = subprocess.Popen(
        [sys.executable, str(EXTRA), "pause_input", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        runs = conftest.wait_for(
            lambda: client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[token]))),
            lambda rs: len(rs) == 1 and rs[0].state_type is not None and rs[0].state_type.value == "PAUSED",
            "the flow run to pause",
            timeout=90,
        )
        run = runs[0]
        keyset = run.state.state_details.run_input_keyset
        assert keyset == {
            "description": "paused-1-description",
            "response": "paused-1-response",
            "schema": "paused-1-schema",
        }
        # The flow saves its input schema right after pausing.
        schema = conftest.wait_for(
            lambda: client.filter_flow_run_input(run.id, key_prefix="paused-1-schema", limit=1, exclude_keys=set()),
            lambda found: len(found) == 1,
            "the run-input schema",
        )
        assert json.loads(schema[0].value)["required"] == ["approved"]

        bad = resume_in_another_process(run.id, {"approved": "maybe"})
        assert bad.returncode != 0
        assert "Cannot resume this run" in bad.stderr and "approved" in bad.stderr, bad.stderr[-2000:]
        assert client.read_flow_run(run.id).state_type.value == "PAUSED"
        assert client.filter_flow_run_input(run.id, key_prefix="paused-1-response", limit=1, exclude_keys=set()) == []

        good = resume_in_another_process(run.id, {"approved": True, "reason": "ship it"})
        assert good.returncode == 0, good.stderr[-4000:]
        out, err = flow_proc.communicate(timeout=120)
    finally:
        if flow_proc.poll() is None:
            flow_proc.kill()
            flow_proc.wait()
    lines = [ln for ln in out.splitlines() if ln.startswith("COMPAT_RESULT ")]
    assert flow_proc.returncode == 0 and lines, f"{out[-4000:]}\n{err[-8000:]}"
    result = json.loads(lines[-1][len("COMPAT_RESULT "):])
    assert result["state_type"] == "COMPLETED"
    assert result["result"] == {"approved": True, "reason": "ship it"}

    assert json.loads(client.read_flow_run_input(run.id, "paused-1-response")) == {
        "approved": True,
        "reason": "ship it",
    }
    states = sorted(client.read_flow_run_states(run.id), key=lambda s: s.timestamp)
    names = [(s.type.value, s.name) for s in states]
    assert ("PAUSED", "Paused") in names
    paused_at = names.index(("PAUSED", "Paused"))
    assert names[paused_at + 1] == ("RUNNING", "Running")
    assert names[-1] == ("COMPLETED", "Completed")
    assert client.read_flow_run(run.id).state_type.value == "COMPLETED"
