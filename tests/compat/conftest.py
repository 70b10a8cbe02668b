"""Shared helpers of the compat suite.

The suite talks to whatever server `PREFECT_API_URL` points at (Orrery, started by
scripts/compat.sh, or the reference Prefect server). Flows run in subprocesses with the real
client (tests/compat/flows/scenarios.py); the tests then read back what the server recorded
with the client's own `get_client()` methods.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional, TypeVar

import pytest

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "flows" / "scenarios.py"

# Task runs are recorded from events, asynchronously: poll for them this long.
RECORD_TIMEOUT = float(os.environ.get("ORRERY_COMPAT_RECORD_TIMEOUT", "20"))

# Orrery's default account and workspace (the Cloud-style prefix).
DEFAULT_ACCOUNT = "00000000-0000-4000-8000-000000000001"
DEFAULT_WORKSPACE = "00000000-0000-4000-8000-000000000002"

T = TypeVar("T")


def api_url() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        pytest.exit("PREFECT_API_URL is not set: run the suite through scripts/compat.sh", 2)
    return url.rstrip("/")


def server_root() -> str:
    """http://host:port of the server under test (ORRERY_URL, else from PREFECT_API_URL)."""
    if os.environ.get("ORRERY_URL"):
        return os.environ["ORRERY_URL"].rstrip("/")
    url = api_url()
    return url[: url.index("/api")] if "/api" in url else url


@pytest.fixture(scope="session", autouse=True)
def _server_is_up():
    import httpx

    url = api_url()
    try:
        r = httpx.get(url + "/health", timeout=10)
    except httpx.HTTPError as e:  # pragma: no cover - environment problem
        pytest.exit(f"server at {url} is not reachable: {e!r}", 2)
    assert r.status_code == 200, f"GET {url}/health -> {r.status_code} {r.text}"


@pytest.fixture
def token() -> str:
    """A tag unique to the test; every scenario run is tagged with it."""
    return f"compat-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client():
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as c:
        yield c


class ScenarioRun:
    def __init__(self, proc: subprocess.CompletedProcess, out: dict):
        self.proc = proc
        self.out = out
        self.flow_run_id = uuid.UUID(out["flow_run_id"])
        self.state_type = out["state_type"]
        self.result = out["result"]


def run_scenario(name: str, token: str, env: Optional[dict] = None, timeout: float = 180) -> ScenarioRun:
    """Runs one scenario of flows/scenarios.py in a fresh interpreter and returns its result."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS), name, token],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COMPAT_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"scenario {name!r} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return ScenarioRun(proc, json.loads(lines[-1][len("COMPAT_RESULT "):]))


def wait_for(fn: Callable[[], T], ok: Callable[[T], bool], what: str, timeout: float = RECORD_TIMEOUT) -> T:
    """Calls fn until ok(value) holds; fails with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")
        time.sleep(0.25)


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def task_runs_of(client, flow_run_id, expected: int, sort=None):
    """Task runs of a flow run, once `expected` of them are recorded in a final state."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    def read():
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), sort=sort
        )

    return wait_for(
        read,
        lambda trs: len(trs) >= expected
        and all(tr.state_type is not None and tr.state_type.value in FINAL for tr in trs),
        f"{expected} finished task runs of flow run {flow_run_id}",
    )


def logs_of(client, flow_run_id, predicate: Callable[[list], bool], what: str):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    return wait_for(
        lambda: client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))),
        predicate,
        what,
    )
