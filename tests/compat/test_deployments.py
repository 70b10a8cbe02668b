"""Deployments, schedules, work pools, work queues and workers with the real client.

* `prefect work-pool create`, `prefect --no-prompt deploy` (prefect.yaml) and
  `flow.from_source(...).deploy(...)`; a `prefect worker start --type process` picks up runs made
  by `prefect deployment run`, `run_deployment(...)` and `create_flow_run_from_deployment`, and
  each completes with its parameters; the worker is ONLINE while it runs and OFFLINE (foreman)
  after it stops.
* `flow.serve(interval=...)` and `flow.serve(cron=...)`: the scheduler creates the runs and the
  served process runs them; pausing the deployment removes its future auto-scheduled runs.
* `prefect flow-run cancel` ends a running deployment run CANCELLED and kills its process.
* Queue priorities and pool/queue concurrency limits decide what `get_scheduled_flow_runs` gives.
* Two Orrery processes on one PostgreSQL database create every scheduled run exactly once.

These tests need fast background services (scheduler, foreman). Under scripts/compat.sh
(`ORRERY_URL` set) the module starts its own Orrery (`$ORRERY_BIN`, default
target/release/orrery) with short service intervals, on a fresh PostgreSQL database and Redis
namespace when ORRERY_COMPAT_DATABASE_URL / ORRERY_COMPAT_REDIS_URL are set. Against another
server (the reference one) they use `PREFECT_API_URL` as is; start it with e.g.
PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS=1, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS=5
and PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS=2 (on PostgreSQL: its SQLite
answers 503 under this load). The reference scheduler can re-insert runs of a deployment paused
while it was scheduling it (its poll bumps `updated`, so the recent-deployments loop visits a
served deployment every pass): a rare failure of the pause check there is that race.
"""

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import conftest
import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.states import Pending, Scheduled

ROOT = conftest.HERE.parent.parent
PROJECT_SRC = conftest.HERE / "flows" / "deploy_project"
PREFECT = str(Path(sys.executable).parent / "prefect")
FINAL = conftest.FINAL

# Service intervals of the Orrery this module starts.
FAST_SERVICES = {
    "ORRERY__SERVICES__SCHEDULER_INTERVAL_MS": "1000",
    "ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS": "500",
    "ORRERY__SERVICES__FOREMAN_INTERVAL_MS": "1000",
    "ORRERY__SERVICES__LATE_RUNS_INTERVAL_MS": "1000",
    "ORRERY__SERVICES__CANCELLATION_CLEANUP_INTERVAL_MS": "2000",
}
# Client cadences: poll and heartbeat every second.
FAST_CLIENT = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "1",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


# ------------------------------------------------------------------------------ servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _orrery_bin() -> Path:
    b = Path(os.environ.get("ORRERY_BIN", "target/release/orrery"))
    return b if b.is_absolute() else ROOT / b


def _with_db(url: str, name: str) -> str:
    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


class OrreryProcess:
    """One `orrery` process on a free port (killed by `stop`)."""

    def __init__(self, env: dict, workdir: Path):
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.api = self.root + "/api"
        self.log_path = workdir / f"orrery-{self.port}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("ORRERY__")}
        full.update(env)
        full["ORRERY__SERVER__BIND"] = f"127.0.0.1:{self.port}"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(_orrery_bin())], env=full, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orrery exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.api + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"orrery did not become ready:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Backend:
    """A fresh database (PostgreSQL when ORRERY_COMPAT_DATABASE_URL is set, else a SQLite data
    dir) and Redis namespace that one or more Orrery processes can share."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.admin_url = os.environ.get("ORRERY_COMPAT_DATABASE_URL") or None
        self.redis_url = os.environ.get("ORRERY_COMPAT_REDIS_URL") or None
        self.db_name = None
        self.env = {"ORRERY__DATABASE__DATA_DIR": str(workdir / "data"), **FAST_SERVICES}
        (workdir / "data").mkdir(exist_ok=True)
        if self.admin_url:
            self.db_name = f"orrery_compat_dep_{uuid.uuid4().hex[:12]}"
            subprocess.run(["psql", self.admin_url, "-qc", f"CREATE DATABASE {self.db_name}"], check=True, capture_output=True)
            self.env["ORRERY__DATABASE__URL"] = _with_db(self.admin_url, self.db_name)
        if self.redis_url:
            self.env["ORRERY__REDIS__URL"] = self.redis_url
            self.env["ORRERY__REDIS__NAMESPACE"] = f"orrery-compat-dep-{uuid.uuid4().hex[:12]}"
        self.processes = []

    def start(self) -> OrreryProcess:
        p = OrreryProcess(self.env, self.workdir)
        self.processes.append(p)
        return p

    def close(self):
        for p in self.processes:
            p.stop()
        if self.db_name:
            subprocess.run(
                ["psql", self.admin_url, "-qc", f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'],
                capture_output=True,
            )


def _testing_orrery() -> bool:
    return bool(os.environ.get("ORRERY_URL"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The API URL to use: a private Orrery with fast services, or PREFECT_API_URL."""
    if not _testing_orrery():
        yield conftest.api_url()
        return
    backend = Backend(tmp_path_factory.mktemp("orrery-deployments"))
    try:
        proc = backend.start()
        yield proc.api
    except BaseException:
        for p in backend.processes:
            print(f"----- {p.log_path} -----\n{p.log()}", file=sys.stderr)
        raise
    finally:
        backend.close()


@pytest.fixture
def api(server):
    with SyncPrefectClient(server) as c:
        yield c


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def client_env(server: str, **extra) -> dict:
    env = dict(os.environ)
    env.update(FAST_CLIENT)
    env["PREFECT_API_URL"] = server
    env.update(extra)
    return env


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of flows/deploy_project (the worker and runner load flow.py from here)."""
    d = tmp_path_factory.mktemp("deploy_project")
    shutil.copy(PROJECT_SRC / "flow.py", d / "flow.py")
    return d


def run_cli(server: str, *args, cwd=None, timeout=120, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [PREFECT, *args], cwd=cwd, env=client_env(server), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def run_python(server: str, code: str, *args, cwd=None, timeout=180) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=client_env(server), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"python exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc.stdout


class Background:
    """A long-running client process (worker, served flow) in its own session."""

    def __init__(self, server: str, args: list, cwd=None, **env):
        self.log = tempfile.NamedTemporaryFile(prefix="compat-bg-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=client_env(server, **env), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-8000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def interrupt(self, timeout=30) -> Optional[int]:
        """Ctrl-C, as a user stops a worker or `serve`; the whole session is killed after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()


def start_worker(server: str, pool: str) -> Background:
    return Background(server, [PREFECT, "worker", "start", "--pool", pool, "--type", "process"])


def wait_final(api, run_id, timeout=120, worker: Optional[Background] = None):
    def read():
        if worker is not None and not worker.alive():
            raise AssertionError(f"the worker exited {worker.proc.returncode}:\n{worker.output()}")
        return api.read_flow_run(run_id)

    try:
        return conftest.wait_for(read, lambda r: r.state_type is not None and r.state_type.value in FINAL, f"run {run_id} to finish", timeout)
    except AssertionError:
        if worker is not None:
            print(worker.output(), file=sys.stderr)
        raise


def output_of(project: Path, run_id) -> dict:
    return json.loads((project / "out" / f"{run_id}.json").read_text())


def runs_of(api, deployment_id):
    return api.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])))


def state_names(api, run_id):
    return [(s.type.value, s.name) for s in sorted(api.read_flow_run_states(run_id), key=lambda s: s.timestamp)]


def workers(http, pool, status=None):
    body = {"workers": {"status": {"any_": [status]}}} if status else {}
    r = http.post(f"/work_pools/{pool}/workers/filter", json=body)
    assert r.status_code == 200, r.text
    return r.json()


FROM_SOURCE = """
import json, sys
from prefect import flow
d = flow.from_source(source=sys.argv[1], entrypoint=sys.argv[2]).deploy(
    name=sys.argv[3], work_pool_name=sys.argv[4], parameters=json.loads(sys.argv[5]), print_next_steps=False
)
print("DEPLOYMENT_ID", d)
"""

RUN_DEPLOYMENT = """
import json, sys
from prefect.deployments import run_deployment
fr = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=150, poll_interval=1)
print("RUN", json.dumps({"id": str(fr.id), "state": fr.state.type.value}))
"""


def deploy_from_source(server, project: Path, entrypoint: str, name: str, pool: str, parameters: dict) -> uuid.UUID:
    out = run_python(server, FROM_SOURCE, str(project), entrypoint, name, pool, json.dumps(parameters))
    line = [ln for ln in out.splitlines() if ln.startswith("DEPLOYMENT_ID ")][-1]
    return uuid.UUID(line.split()[1])


# ------------------------------------------------------------------------------ work pools, deploy, worker


def test_work_pool_create_cli(server, api):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    run_cli(server, "work-pool", "create", name, "--type", "process")
    pool = api.read_work_pool(name)
    assert pool.type == "process"
    assert pool.status is not None and pool.status.value == "NOT_READY"
    assert pool.is_paused is False
    # The process worker's base job template, sent by the CLI.
    assert "command" in pool.base_job_template["job_configuration"]
    assert "working_dir" in pool.base_job_template["variables"]["properties"]
    queues = api.read_work_queues(work_pool_name=name)
    assert [q.name for q in queues] == ["default"]
    assert queues[0].id == pool.default_queue_id

    again = run_cli(server, "work-pool", "create", name, "--type", "process", check=False)
    assert again.returncode != 0
    assert "already exists" in " ".join((again.stdout + again.stderr).split())
    # --overwrite updates it (409 -> PATCH).
    run_cli(server, "work-pool", "create", name, "--type", "process", "--overwrite")
    assert api.read_work_pool(name).id == pool.id


def test_deploy_and_run_with_a_process_worker(server, api, http, project):
    tok = uuid.uuid4().hex[:8]
    pool = f"wp-{tok}"
    run_cli(server, "work-pool", "create", pool, "--type", "process")

    # prefect.yaml + `prefect --no-prompt deploy`.
    (project / "prefect.yaml").write_text(
        json.dumps(
            {
                "name": "compat-deploy-project",
                "prefect-version": "3.9.1",
                "build": None,
                "push": None,
                "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}],
                "deployments": [
                    {
                        "name": f"d1-{tok}",
                        "entrypoint": "flow.py:my_flow",
                        "parameters": {"n": 1, "label": "yaml"},
                        "tags": ["compat", tok],
                        "work_pool": {"name": pool, "work_queue_name": None, "job_variables": {}},
                    }
                ],
            }
        )
    )
    run_cli(server, "--no-prompt", "deploy", "--name", f"d1-{tok}", cwd=project)
    d1 = api.read_deployment_by_name(f"my-flow/d1-{tok}")
    assert d1.work_pool_name == pool
    assert d1.work_queue_name == "default"
    assert d1.entrypoint == "flow.py:my_flow"
    assert d1.parameters == {"n": 1, "label": "yaml"}
    assert set(d1.tags) >= {"compat", tok}
    assert d1.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]
    schema = d1.parameter_openapi_schema
    assert schema["properties"]["n"]["type"] == "integer" and schema["required"] == ["n"]
    assert d1.enforce_parameter_schema is True

    # flow.from_source(<local dir>).deploy(...)
    d2_id = deploy_from_source(server, project, "flow.py:my_flow", f"d2-{tok}", pool, {"n": 5})
    d2 = api.read_deployment(d2_id)
    assert (d2.name, d2.work_pool_name, d2.entrypoint, d2.parameters) == (f"d2-{tok}", pool, "flow.py:my_flow", {"n": 5})
    assert d2.flow_id == d1.flow_id

    worker = start_worker(server, pool)
    try:
        # `prefect deployment run` with a parameter.
        out = run_cli(server, "deployment", "run", f"my-flow/d1-{tok}", "--param", "n=41")
        assert "Created flow run" in " ".join(out.stdout.split()), out.stdout
        run1 = conftest.wait_for(lambda: runs_of(api, d1.id), lambda rs: len(rs) == 1, "the CLI's run")[0]
        assert run1.parameters == {"n": 41, "label": "yaml"}
        run1 = wait_final(api, run1.id, worker=worker)
        assert run1.state_type.value == "COMPLETED", state_names(api, run1.id)
        assert output_of(project, run1.id)["n"] == 41
        names = state_names(api, run1.id)
        assert names[0] == ("SCHEDULED", "Scheduled") and names[-1] == ("COMPLETED", "Completed")
        assert ("PENDING", "Pending") in names and ("RUNNING", "Running") in names
        assert run1.work_queue_name == "default" and run1.work_pool_name == pool
        assert run1.infrastructure_pid, "the worker records the process id"
        assert run1.labels.get("prefect.worker.type") == "process"
        assert run1.labels.get("prefect.work-pool.name") == pool

        # run_deployment(...) waits for the run.
        out = run_python(server, RUN_DEPLOYMENT, f"my-flow/d2-{tok}", json.dumps({"n": 7, "label": "run_deployment"}))
        res = json.loads([ln for ln in out.splitlines() if ln.startswith("RUN ")][-1][4:])
        assert res["state"] == "COMPLETED", out
        run2 = api.read_flow_run(uuid.UUID(res["id"]))
        assert run2.deployment_id == d2_id and run2.parameters == {"n": 7, "label": "run_deployment"}
        assert output_of(project, run2.id) == {"n": 7, "label": "run_deployment", "pid": output_of(project, run2.id)["pid"]}

        # create_flow_run_from_deployment, into a second queue of the pool.
        api.create_work_queue(name="second", work_pool_name=pool)
        fr = api.create_flow_run_from_deployment(d2_id, parameters={"n": 9}, work_queue_name="second")
        run3 = wait_final(api, fr.id, worker=worker)
        assert run3.state_type.value == "COMPLETED"
        assert run3.work_queue_name == "second"
        assert output_of(project, run3.id)["n"] == 9
        # Three different processes ran the three runs, none of them the test's.
        pids = {output_of(project, r)["pid"] for r in (run1.id, run2.id, run3.id)}
        assert len(pids) == 3 and os.getpid() not in pids

        # The worker heartbeats: ONLINE, and its pool READY.
        online = workers(http, pool, "ONLINE")
        assert len(online) == 1, online
        assert online[0]["name"].startswith("ProcessWorker")
        assert api.read_work_pool(pool).status.value == "READY"
        # Polling marked the deployments READY.
        assert api.read_deployment(d1.id).status.value == "READY"
    finally:
        worker.interrupt()

    # Stopped: OFFLINE after 3 missed heartbeats (1 s each), then the pool is NOT_READY.
    conftest.wait_for(lambda: workers(http, pool), lambda ws: len(ws) == 1 and ws[0]["status"] == "OFFLINE", "the worker to go OFFLINE", 60)
    conftest.wait_for(lambda: api.read_work_pool(pool).status.value, lambda s: s == "NOT_READY", "the pool to be NOT_READY", 60)


def test_cancel_a_running_deployment_run_kills_its_process(server, api, project, tmp_path):
    tok = uuid.uuid4().hex[:8]
    pool = f"cancel-{tok}"
    run_cli(server, "work-pool", "create", pool, "--type", "process")
    dep_id = deploy_from_source(server, project, "flow.py:sleeper", f"sleepy-{tok}", pool, {})
    pid_file = tmp_path / "sleeper.pid"
    worker = start_worker(server, pool)
    try:
        fr = api.create_flow_run_from_deployment(dep_id, parameters={"pid_file": str(pid_file), "seconds": 120})
        conftest.wait_for(
            lambda: api.read_flow_run(fr.id).state_type.value if worker.alive() else f"worker died: {worker.output()}",
            lambda s: s == "RUNNING",
            "the sleeper to run",
            90,
        )
        pid = int(conftest.wait_for(lambda: pid_file.read_text() if pid_file.exists() else "", bool, "the PID file"))
        os.kill(pid, 0)  # alive

        out = run_cli(server, "flow-run", "cancel", str(fr.id))
        assert "successfully scheduled for cancellation" in " ".join(out.stdout.split()), out.stdout
        run = wait_final(api, fr.id, timeout=90, worker=worker)
        assert run.state_type.value == "CANCELLED", state_names(api, fr.id)
        names = state_names(api, fr.id)
        assert ("CANCELLING", "Cancelling") in names, names

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            status = Path(f"/proc/{pid}/status")
            return status.exists() and "zombie" in status.read_text()

        conftest.wait_for(gone, bool, f"flow process {pid} to be killed", 30)
        assert worker.alive(), "the worker survives the cancellation"
    finally:
        worker.interrupt()
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


# ------------------------------------------------------------------------------ serve

SERVE = """
import sys
sys.path.insert(0, sys.argv[1])
from flow import my_flow
kind, name, value, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if kind == "interval":
    my_flow.serve(name=name, interval=int(value), parameters={"n": n, "label": name})
else:
    my_flow.serve(name=name, cron=value, parameters={"n": n, "label": name})
"""


def _serve(server, project, kind, name, value, n) -> Background:
    return Background(server, [sys.executable, "-c", SERVE, str(project), kind, name, value, str(n)], cwd=project)


def _deployment_named(api, name, proc: Background):
    def read():
        if not proc.alive():
            raise AssertionError(f"serve exited {proc.proc.returncode}:\n{proc.output()}")
        try:
            return api.read_deployment_by_name(f"my-flow/{name}")
        except Exception:
            return None

    return conftest.wait_for(read, lambda d: d is not None, f"deployment {name}", 60)


def _future_scheduled(api, dep):
    now = dt.datetime.now(dt.timezone.utc)
    return [
        r for r in runs_of(api, dep)
        if r.auto_scheduled and r.state_type.value == "SCHEDULED" and r.next_scheduled_start_time > now
    ]


def _completed(api, dep):
    return [r for r in runs_of(api, dep) if r.state_type.value == "COMPLETED"]


def test_serve_interval_runs_then_pause(server, api, project):
    name = f"every3-{uuid.uuid4().hex[:8]}"
    proc = _serve(server, project, "interval", name, "3", 3)
    try:
        d = _deployment_named(api, name, proc)
        assert d.work_pool_name is None and d.paused is False
        sched = api.read_deployment_schedules(d.id)
        assert len(sched) == 1 and sched[0].active and sched[0].schedule.interval == dt.timedelta(seconds=3)

        # The scheduler fills the future with auto-scheduled runs every 3 s...
        future = conftest.wait_for(lambda: _future_scheduled(api, d.id), lambda rs: len(rs) >= 3, "scheduled runs", 60)
        times = sorted(r.next_scheduled_start_time for r in future)
        assert {(b - a).total_seconds() for a, b in zip(times, times[1:])} == {3.0}, times[:5]
        keys = [r.idempotency_key for r in runs_of(api, d.id) if r.auto_scheduled]
        assert len(keys) == len(set(keys))

        # ...and the served process runs them as they come due.
        done = conftest.wait_for(lambda: _completed(api, d.id), lambda rs: len(rs) >= 2, "two interval runs to complete", 90)
        for r in done:
            assert r.auto_scheduled and r.parameters == {"n": 3, "label": name}
            assert output_of(project, r.id)["label"] == name
            assert output_of(project, r.id)["pid"] != os.getpid()

        # Pausing removes the future auto-scheduled runs, and no new ones appear (runs already
        # due may still be picked up by the runner).
        paused_at = dt.datetime.now(dt.timezone.utc)
        api.pause_deployment(d.id)
        assert api.read_deployment(d.id).paused is True
        assert _future_scheduled(api, d.id) == []
        time.sleep(8)  # several scheduler passes
        assert _future_scheduled(api, d.id) == []
        created = [r.name for r in runs_of(api, d.id) if r.created > paused_at]
        assert created == [], "no run of the paused deployment is created after the pause"
        # Runs the runner had prefetched (PENDING, due within its prefetch window) may finish;
        # nothing else of the paused deployment is left to run.
        waiting = [r.name for r in runs_of(api, d.id) if r.state_type.value == "SCHEDULED" and r.expected_start_time > paused_at]
        assert waiting == []
    finally:
        proc.interrupt()


def test_serve_cron_runs(server, api, project):
    name = f"cron-{uuid.uuid4().hex[:8]}"
    proc = _serve(server, project, "cron", name, "* * * * *", 4)
    try:
        d = _deployment_named(api, name, proc)
        sched = api.read_deployment_schedules(d.id)
        assert len(sched) == 1 and sched[0].schedule.cron == "* * * * *"
        future = conftest.wait_for(lambda: _future_scheduled(api, d.id), lambda rs: len(rs) >= 3, "cron runs", 60)
        for r in future:
            t = r.next_scheduled_start_time
            assert t.second == 0 and t.microsecond == 0, t
            assert r.parameters == {"n": 4, "label": name}
        times = sorted(r.next_scheduled_start_time for r in future)
        assert {(b - a).total_seconds() for a, b in zip(times, times[1:])} == {60.0}, times[:5]
        # More scheduler passes add no duplicates.
        time.sleep(4)
        runs = [r for r in runs_of(api, d.id) if r.auto_scheduled]
        assert len({r.next_scheduled_start_time for r in runs}) == len(runs)
        # The first run (the next whole minute) is run by the served process.
        first = conftest.wait_for(lambda: _completed(api, d.id), lambda rs: len(rs) >= 1, "the first cron run", 90)[0]
        assert first.expected_start_time.second == 0 and first.expected_start_time.microsecond == 0
        assert output_of(project, first.id)["n"] == 4
    finally:
        proc.interrupt()
    # serve pauses its deployment on shutdown.
    assert api.read_deployment(d.id).paused is True


# ------------------------------------------------------------------------------ priorities and limits


def test_queue_priority_and_concurrency_limits_decide_what_a_worker_gets(server, api, http):
    tok = uuid.uuid4().hex[:8]
    pool = f"prio-{tok}"
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

    api.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    urgent = api.create_work_queue(name="urgent", work_pool_name=pool, priority=1)
    bulk = api.create_work_queue(name="bulk", work_pool_name=pool, concurrency_limit=1)
    queues = {q.name: q for q in api.read_work_queues(work_pool_name=pool)}
    assert [(q.name, q.priority) for q in sorted(queues.values(), key=lambda q: q.priority)] == [
        ("urgent", 1), ("default", 2), ("bulk", 3)
    ], "an explicit priority pushes the default queue down"

    flow_id = api.create_flow_from_name(f"prio-flow-{tok}")
    dep_id = api.create_deployment(flow_id=flow_id, name="d", work_pool_name=pool)
    now = dt.datetime.now(dt.timezone.utc)

    def run(queue, seconds_ago, name):
        return api.create_flow_run_from_deployment(
            dep_id, name=name, work_queue_name=queue, state=Scheduled(scheduled_time=now - dt.timedelta(seconds=seconds_ago))
        )

    b1 = run("bulk", 300, "b1")
    run("bulk", 290, "b2")
    run("default", 200, "df")
    run("urgent", 100, "u1")
    run("urgent", -3600, "u-next-hour")

    def poll(**body):
        body.setdefault("scheduled_before", str(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=10)))
        r = http.post(f"/work_pools/{pool}/get_scheduled_flow_runs", json=body)
        assert r.status_code == 200, r.text
        return [x["flow_run"]["name"] for x in r.json()]

    assert poll() == ["u1", "df", "b1"], "priority first, then time; bulk's limit of 1"
    assert poll(limit=2) == ["u1", "df"]
    assert poll(work_queue_names=["bulk", "default"]) == ["df", "b1"]
    r = http.post(f"/work_pools/{pool}/get_scheduled_flow_runs", json={"work_queue_names": ["nope"]})
    assert (r.status_code, r.json()) == (404, {"detail": f"Work pool queue '{pool}/nope' not found."})
    raw = http.post(f"/work_pools/{pool}/get_scheduled_flow_runs", json={"scheduled_before": str(now + dt.timedelta(seconds=10))}).json()
    assert raw[0]["work_queue_id"] == str(urgent.id) and raw[0]["work_pool_id"] == str(api.read_work_pool(pool).id)

    # A pool limit of 2 is shared by all queues, in priority order.
    api.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=2))
    assert poll() == ["u1", "df"]
    # A PENDING run takes one pool slot and bulk's only slot.
    api.set_flow_run_state(b1.id, Pending())
    assert poll() == ["u1"]
    assert http.get(f"/work_pools/{pool}/queues/bulk").json()["active_slots"] == 1
    api.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=None))
    assert poll() == ["u1", "df"], "bulk is still full"
    api.update_work_queue(bulk.id, concurrency_limit=2)
    assert poll() == ["u1", "df", "b2"]
    # Paused queues and pools hand out nothing.
    api.update_work_queue(urgent.id, is_paused=True)
    assert poll() == ["df", "b2"]
    api.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
    assert poll() == []
    api.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
    assert poll() == ["df", "b2"]
    # The client's own method returns the same.
    got = api.get_scheduled_flow_runs_for_work_pool(pool, scheduled_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=10))
    assert [g.flow_run.name for g in got] == ["df", "b2"]
    assert {g.work_queue_id for g in got} == {queues["default"].id, bulk.id}


# ------------------------------------------------------------------------------ two schedulers


@pytest.mark.skipif(
    not (os.environ.get("ORRERY_COMPAT_DATABASE_URL") and os.environ.get("ORRERY_URL")),
    reason="needs two Orrery processes on one PostgreSQL database (ORRERY_COMPAT_DATABASE_URL)",
)
def test_two_schedulers_on_one_database_create_each_run_once(tmp_path):
    backend = Backend(tmp_path)
    backend.env.update(
        {"ORRERY__SERVICES__SCHEDULER_INTERVAL_MS": "200", "ORRERY__SERVICES__RECENT_SCHEDULER_INTERVAL_MS": "100"}
    )
    try:
        a, b = backend.start(), backend.start()
        with SyncPrefectClient(a.api) as ca, SyncPrefectClient(b.api) as cb:
            flow_id = ca.create_flow_from_name(f"twice-{uuid.uuid4().hex[:8]}")
            from prefect.client.schemas.actions import DeploymentScheduleCreate
            from prefect.client.schemas.schedules import IntervalSchedule

            def schedules(seconds):
                return [DeploymentScheduleCreate(schedule=IntervalSchedule(interval=dt.timedelta(seconds=seconds)), active=True)]

            dep_id = ca.create_deployment(flow_id=flow_id, name="d", schedules=schedules(60))

            def auto_runs():
                return [r for r in runs_of(cb, dep_id) if r.auto_scheduled]

            def check():
                runs = auto_runs()
                keys = Counter(r.idempotency_key for r in runs)
                assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
                times = Counter((r.created_by.id if r.created_by else None, r.next_scheduled_start_time) for r in runs)
                assert max(times.values()) == 1, [t for t, n in times.items() if n > 1]
                return runs

            conftest.wait_for(auto_runs, lambda rs: len(rs) >= 60, "the schedulers to fill an hour", 60)
            time.sleep(3)  # many passes of both processes
            first = check()
            # An upsert through the other process replaces the schedule: old future runs go, new ones
            # are created once.
            cb.create_deployment(flow_id=flow_id, name="d", schedules=schedules(30))
            conftest.wait_for(
                auto_runs,
                lambda rs: len({r.created_by.id for r in rs if r.created_by}) == 1 and len(rs) >= 100,
                "runs of the new schedule",
                60,
            )
            time.sleep(3)
            second = check()
            assert {r.id for r in second}.isdisjoint({r.id for r in first}), "future runs of the old schedule are gone"
            assert len(second) <= 100, "max_runs"
    except BaseException:
        for p in backend.processes:
            print(f"----- {p.log_path} -----\n{p.log()}", file=sys.stderr)
        raise
    finally:
        backend.close()
