"""`auth.mode = "required"` with the real client, in both of its modes: Prefect Cloud mode
(`prefect cloud login --key ... --workspace ...`, then a flow with tasks in that workspace,
events over the websocket with the key as a Bearer header) and server mode
(`PREFECT_API_AUTH_STRING=anything:<key>`, Basic on HTTP and the socket's auth message).
Users, access and keys are made with Orrery's command line, on the same databases."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_deployments import Backend, _orrery_bin, _testing_orrery

pytestmark = pytest.mark.skipif(not _testing_orrery(), reason="starts its own Orrery")

FLOW = """
from prefect import flow, task

@task
def double(x):
    return 2 * x

@flow(name="auth-modes")
def main():
    return sum(double.map([1, 2, 3]).result())

print("RESULT", main())
"""


def orrery(backend: Backend, *args: str, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORRERY__")}
    env.update(backend.env)
    done = subprocess.run([str(_orrery_bin()), *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    backend = Backend(tmp_path_factory.mktemp("orrery-auth"))
    backend.env["ORRERY__AUTH__MODE"] = "required"
    try:
        proc = backend.start()
        orrery(backend, "user", "add", "dev@example.com", "--name", "Dev")
        orrery(backend, "access", "grant", "--workspace", "default", "--user", "dev@example.com",
               "--role", "developer")
        out = orrery(backend, "api-key", "create", "--user", "dev@example.com", "--name", "compat")
        key = out.strip()
        assert out.count("\n") == 1 and re.fullmatch(r"pnu_[0-9A-Za-z]{36}", key), out
        yield proc, key
    except BaseException:
        for p in backend.processes:
            print(f"----- {p.log_path} -----\n{p.log()}", file=sys.stderr)
        raise
    finally:
        backend.close()


def client_env(home: Path, **settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_CLI_PROMPT": "false"}, **settings)
    return env


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=180)


def recorded(api: str, key: str, name: str) -> tuple[dict, int]:
    """The newest run of flow `name` and how many task runs it has, once all three are in."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 30
    while True:
        runs = httpx.post(f"{api}/flow_runs/filter", headers=headers, timeout=30,
                          json={"flows": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC"}).json()
        tasks = 0
        if runs:
            tasks = httpx.post(f"{api}/task_runs/count", headers=headers, timeout=30,
                               json={"flow_runs": {"id": {"any_": [runs[0]["id"]]}}}).json()
        if tasks >= 3 or time.monotonic() > deadline:
            return (runs[0] if runs else {}), tasks
        time.sleep(0.3)


def test_nothing_without_a_key(server):
    proc, _ = server
    r = httpx.post(f"{proc.api}/flows/filter", json={}, timeout=30)
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    assert httpx.get(f"{proc.api}/health", timeout=30).status_code == 200


def test_cloud_login_then_a_flow_in_the_workspace(server, tmp_path):
    proc, key = server
    env = client_env(tmp_path, PREFECT_CLOUD_API_URL=proc.api)
    prefect = str(Path(sys.executable).parent / "prefect")
    bad = run(env, prefect, "cloud", "login", "--key", "pnu_" + "x" * 36, "--workspace", "default/default")
    assert bad.returncode != 0
    login = run(env, prefect, "cloud", "login", "--key", key, "--workspace", "default/default")
    assert login.returncode == 0, login.stdout + login.stderr
    view = run(env, prefect, "config", "view", "--show-secrets")
    match = re.search(r"PREFECT_API_URL='([^']+)'", view.stdout)
    assert match, view.stdout
    workspace_api = match.group(1)
    assert re.fullmatch(re.escape(proc.api) + r"/accounts/[0-9a-f-]{36}/workspaces/[0-9a-f-]{36}",
                        workspace_api), workspace_api
    flow = run(env, sys.executable, "-c", FLOW)
    assert "RESULT 12" in flow.stdout, flow.stdout + flow.stderr
    run_, tasks = recorded(workspace_api, key, "auth-modes")
    assert run_["state_type"] == "COMPLETED"
    assert tasks == 3, "task runs are recorded from the events sent over the websocket"


def test_server_mode_with_an_auth_string(server, tmp_path):
    proc, key = server
    env = client_env(tmp_path, PREFECT_API_URL=proc.api, PREFECT_API_AUTH_STRING=f"anything:{key}")
    flow = run(env, sys.executable, "-c", FLOW)
    assert "RESULT 12" in flow.stdout, flow.stdout + flow.stderr
    run_, tasks = recorded(proc.api, key, "auth-modes")
    assert run_["state_type"] == "COMPLETED"
    assert tasks == 3
    wrong = client_env(tmp_path, PREFECT_API_URL=proc.api, PREFECT_API_AUTH_STRING="anything:wrong")
    refused = run(wrong, sys.executable, "-c", FLOW)
    assert refused.returncode != 0
