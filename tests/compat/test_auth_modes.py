"""`auth.mode = "required"` with the real client, in both of its modes: Prefect Cloud mode
(`prefect cloud login --key ... --workspace ...`, then a flow with tasks in that workspace,
events over the websocket with the key as a Bearer header) and server mode
(`PREFECT_API_AUTH_STRING=anything:<key>`, Basic on HTTP and the socket's auth message).
Users, access and keys are made with Orrery's command line, on the same databases."""

import json
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


SERVER_BACKENDS: dict = {}


def server_backend(server) -> Backend:
    """The backend (databases) of the `server` fixture, for the command line."""
    return SERVER_BACKENDS[id(server[0])]


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
        SERVER_BACKENDS[id(proc)] = backend
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


def recorded(api: str, key: str, name: str, want: int = 3) -> tuple[dict, int]:
    """The newest run of flow `name` and how many task runs it has, once `want` are in."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 30
    while True:
        runs = httpx.post(f"{api}/flow_runs/filter", headers=headers, timeout=30,
                          json={"flows": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC"}).json()
        tasks = 0
        if runs:
            tasks = httpx.post(f"{api}/task_runs/count", headers=headers, timeout=30,
                               json={"flow_runs": {"id": {"any_": [runs[0]["id"]]}}}).json()
        if tasks >= want or time.monotonic() > deadline:
            return (runs[0] if runs else {}), tasks
        time.sleep(0.3)


def test_nothing_without_a_key(server):
    proc, _ = server
    r = httpx.post(f"{proc.api}/flows/filter", json={}, timeout=30)
    assert (r.status_code, r.json()) == (401, {"detail": "Not authenticated"})
    assert httpx.get(f"{proc.api}/health", timeout=30).status_code == 200


PREFECT = str(Path(sys.executable).parent / "prefect")


def cloud_login(proc, key: str, env: dict) -> str:
    """`prefect cloud login` into the default workspace; answers the workspace's API URL."""
    login = run(env, PREFECT, "cloud", "login", "--key", key, "--workspace", "default/default")
    assert login.returncode == 0, login.stdout + login.stderr
    view = run(env, PREFECT, "config", "view", "--show-secrets")
    match = re.search(r"PREFECT_API_URL='([^']+)'", view.stdout)
    assert match, view.stdout
    workspace_api = match.group(1)
    assert re.fullmatch(re.escape(proc.api) + r"/accounts/[0-9a-f-]{36}/workspaces/[0-9a-f-]{36}",
                        workspace_api), workspace_api
    return workspace_api


def test_cloud_login_then_a_flow_in_the_workspace(server, tmp_path):
    proc, key = server
    env = client_env(tmp_path, PREFECT_CLOUD_API_URL=proc.api)
    bad = run(env, PREFECT, "cloud", "login", "--key", "pnu_" + "x" * 36, "--workspace", "default/default")
    assert bad.returncode != 0
    workspace_api = cloud_login(proc, key, env)
    flow = run(env, sys.executable, "-c", FLOW)
    assert "RESULT 12" in flow.stdout, flow.stdout + flow.stderr
    run_, tasks = recorded(workspace_api, key, "auth-modes")
    assert run_["state_type"] == "COMPLETED"
    assert tasks == 3, "task runs are recorded from the events sent over the websocket"


def test_cloud_webhook_cli_manages_a_webhook_that_turns_requests_into_events(server, tmp_path):
    proc, key = server
    env = client_env(tmp_path, PREFECT_CLOUD_API_URL=proc.api)
    workspace_api = cloud_login(proc, key, env)
    headers = {"Authorization": f"Bearer {key}"}

    def cli(*args: str) -> str:
        done = run(env, PREFECT, "cloud", "webhook", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def listed() -> list:
        return json.loads(cli("ls", "--output", "json"))

    template = ('{"event": "compat.hook.{{ body.action }}", '
                '"resource": {"prefect.resource.id": "compat.repo.{{ body.repo }}"}}')
    assert "Successfully created webhook gh" in cli("create", "gh", "--template", template,
                                                     "--description", "from GitHub")
    (hook,) = [w for w in listed() if w["name"] == "gh"]
    assert (hook["enabled"], hook["description"], hook["template"]) == (True, "from GitHub", template)

    # Anyone with the URL sends to it, without a key; the event lands in the workspace.
    sent = httpx.post(f"{proc.api}/hooks/{hook['slug']}", json={"action": "push", "repo": "orrery"},
                      timeout=30)
    assert sent.status_code == 204, sent.text
    deadline = time.monotonic() + 30
    while True:
        found = httpx.post(f"{workspace_api}/events/filter", headers=headers, timeout=30,
                           json={"filter": {"event": {"name": ["compat.hook.push"]}}}).json()
        if found["events"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert [e["resource"]["prefect.resource.id"] for e in found["events"]] == ["compat.repo.orrery"]

    assert "Webhook is now disabled" in cli("toggle", hook["id"])
    got = json.loads(cli("get", hook["id"], "--output", "json"))
    assert got["enabled"] is False
    cli("update", hook["id"], "--name", "github")
    got = json.loads(cli("get", hook["id"], "--output", "json"))
    assert (got["name"], got["template"], got["description"]) == ("github", template, "from GitHub")
    assert f"Successfully deleted webhook {hook['id']}" in cli("delete", hook["id"])
    assert [w for w in listed() if w["id"] == hook["id"]] == []


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


DEPLOYED_FLOW = """
from prefect import flow, task

@task
def square(x):
    return x * x

@flow(name="cloud-deployed")
def deployed(n: int = 3):
    return sum(square.map(range(n)).result())
"""

DEPLOY = """
import sys
from prefect import flow
d = flow.from_source(source=sys.argv[1], entrypoint="flows.py:deployed").deploy(
    name="nightly", work_pool_name=sys.argv[2], parameters={"n": 4}, print_next_steps=False
)
print("DEPLOYMENT_ID", d)
"""


def test_cloud_workspace_made_through_the_admin_api_runs_a_deployment_with_a_bot_worker(server, tmp_path):
    """An account owner makes a workspace and a worker service account through the admin API,
    logs in with `prefect cloud login`, deploys there; a process worker authenticated with the
    service account's key (worker role only) runs the deployment."""
    owner, _ = server
    # An account owner, made with the command line like the first user of an installation.
    backend = server_backend(server)
    orrery(backend, "user", "add", "owner@example.com", "--account-role", "owner")
    owner_key = orrery(backend, "api-key", "create", "--user", "owner@example.com", "--name", "admin").strip()
    h = {"Authorization": f"Bearer {owner_key}"}
    me = httpx.get(f"{owner.api}/me", headers=h, timeout=30).json()
    account = f"{owner.api}/accounts/{me['account_id']}"
    ws = httpx.post(f"{account}/workspaces/", headers=h, timeout=30,
                    json={"name": "Operations", "handle": "ops"})
    assert ws.status_code == 201, ws.text
    ws = ws.json()
    roles = httpx.post(f"{account}/workspace_roles/filter", headers=h, timeout=30,
                       json={"workspace_roles": {"name": {"any_": ["Worker"]}}}).json()
    bot = httpx.post(f"{account}/bots/", headers=h, timeout=30, json={"name": "ops-worker"})
    assert bot.status_code == 201, bot.text
    bot = bot.json()
    workspace_url = f"{account}/workspaces/{ws['id']}"
    granted = httpx.post(f"{workspace_url}/bot_access/", headers=h, timeout=30,
                         json=[{"bot_id": bot["id"], "workspace_role_id": roles[0]["id"]}])
    assert granted.status_code == 200, granted.text

    env = client_env(tmp_path / "owner", PREFECT_CLOUD_API_URL=owner.api)
    prefect = str(Path(sys.executable).parent / "prefect")
    login = run(env, prefect, "cloud", "login", "--key", owner_key, "--workspace", "default/ops")
    assert login.returncode == 0, login.stdout + login.stderr
    pool = run(env, prefect, "work-pool", "create", "ops-pool", "--type", "process")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(DEPLOYED_FLOW)
    deployed = run(env, sys.executable, "-c", DEPLOY, str(project), "ops-pool")
    assert "DEPLOYMENT_ID" in deployed.stdout, deployed.stdout + deployed.stderr
    started = run(env, prefect, "deployment", "run", "cloud-deployed/nightly")
    assert started.returncode == 0, started.stdout + started.stderr

    # The worker: the service account's key, Cloud mode, the new workspace.
    worker_env = client_env(tmp_path / "worker", PREFECT_CLOUD_API_URL=owner.api,
                            PREFECT_API_URL=workspace_url, PREFECT_API_KEY=bot["api_key"]["key"])
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", "ops-pool", "--type", "process"],
                              env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    bot_h = {"Authorization": f"Bearer {bot['api_key']['key']}"}
    try:
        deadline = time.monotonic() + 150
        while True:
            runs = httpx.post(f"{workspace_url}/flow_runs/filter", headers=bot_h, timeout=30,
                              json={"flows": {"name": {"any_": ["cloud-deployed"]}}}).json()
            state = runs[0]["state_type"] if runs else None
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") or time.monotonic() > deadline:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(1)
        assert state == "COMPLETED", (state, (tmp_path / "worker.log").read_text()[-6000:])
        _, tasks = recorded(workspace_url, bot["api_key"]["key"], "cloud-deployed", want=4)
        assert tasks == 4, "task runs are recorded from the events the run sent with the bot's key"
        # The worker's key may not change the workspace's deployments.
        denied = httpx.delete(f"{workspace_url}/deployments/{runs[0]['deployment_id']}", headers=bot_h, timeout=30)
        assert denied.status_code == 403, denied.text
        # Nor see the default workspace.
        other = httpx.post(f"{owner.api}/flows/filter", headers=bot_h, json={}, timeout=30)
        assert other.status_code == 404, other.text
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()
        log.close()
