"""Worker types from the collection registry view, as the `prefect` CLI uses them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import api_url

BUNDLED = Path(__file__).resolve().parents[2] / "config" / "collections" / "aggregate-worker-metadata.json"


def cli(*args: str) -> subprocess.CompletedProcess:
    prefect = Path(sys.executable).parent / "prefect"
    return subprocess.run([str(prefect), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PREFECT_CLI_PROMPT": "false"})


def test_work_pool_types_come_from_the_registry_view(token):
    unknown = cli("work-pool", "create", f"{token}-bad", "-t", "nonsense")
    assert unknown.returncode != 0
    said = unknown.stdout + unknown.stderr
    for known in ("process", "kubernetes", "docker", "ecs"):
        assert known in said, said
    # prefect-aws is not installed here, so the CLI takes the ECS template from the view.
    made = cli("work-pool", "create", f"{token}-ecs", "-t", "ecs")
    assert made.returncode == 0, made.stdout + made.stderr
    pool = httpx.get(f"{api_url()}/work_pools/{token}-ecs", timeout=30).json()
    expected = json.loads(BUNDLED.read_text())["prefect-aws"]["ecs"]
    assert pool["type"] == "ecs"
    assert pool["base_job_template"] == expected["default_base_job_configuration"]


def kubernetes_template() -> dict:
    """What the client creates a kubernetes pool with: prefect-kubernetes is installed in the
    client's environment, so the worker class's own template, as against the reference."""
    from prefect_kubernetes.worker import KubernetesWorker

    return KubernetesWorker.get_default_base_job_template()


def test_kubernetes_pool_gets_the_installed_workers_template(token):
    made = cli("work-pool", "create", f"{token}-k8s", "-t", "kubernetes")
    assert made.returncode == 0, made.stdout + made.stderr
    pool = httpx.get(f"{api_url()}/work_pools/{token}-k8s", timeout=30).json()
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == kubernetes_template()


def test_unknown_and_missing_views_answer_like_the_reference():
    unknown = httpx.get(f"{api_url()}/collections/views/nonsense", timeout=30)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "View nonsense not found in registry"}
    demo = httpx.get(f"{api_url()}/collections/views/demo-flows", timeout=30)
    assert demo.status_code == 404
    assert demo.json() == {"detail": "Requested content missing for view demo-flows"}


def test_block_view_is_the_catalogue_the_ui_shows():
    view = httpx.get(f"{api_url()}/collections/views/aggregate-block-metadata", timeout=30)
    assert view.status_code == 200
    in_view = {slug: entry for c in view.json().values() for slug, entry in c["block_types"].items()}
    types = httpx.post(f"{api_url()}/block_types/filter", json={}, timeout=30).json()
    system = [t for t in types if t["slug"] in in_view]
    # Every type of the view is a type the UI lists, with the same name and logo, and the
    # schema the view names is the one the server stores under that checksum.
    assert len(system) == len(in_view), sorted(set(in_view) - {t["slug"] for t in types})
    for t in system:
        entry = in_view[t["slug"]]
        assert (entry["name"], entry["logo_url"]) == (t["name"], t["logo_url"])
        checksum = entry["block_schema"]["checksum"]
        schema = httpx.get(f"{api_url()}/block_schemas/checksum/{checksum}", timeout=30)
        assert schema.status_code == 200, checksum
        assert schema.json()["block_type"]["slug"] == t["slug"]
        assert schema.json()["fields"] == entry["block_schema"]["fields"]
    assert "aws-credentials" in view.json()["prefect-aws"]["block_types"]


def test_kubernetes_worker_runs_once_and_says_so_in_events(token):
    """`prefect worker start -t kubernetes --run-once` (prefect-kubernetes installed) starts,
    creates its pool from the registry view, polls and stops; the events it emits reach a
    subscriber of /events/out: one started, one stopped that follows it."""
    worker = f"{token}-kw"
    script = f"""
import asyncio, os, sys
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

async def main():
    seen = []
    async def listen():
        flt = EventFilter(event=EventNameFilter(prefix=["prefect.worker."]),
                          resource=EventResourceFilter(id=["prefect.worker.kubernetes.{worker}"]))
        async with get_events_subscriber(filter=flt) as sub:
            async for ev in sub:
                seen.append(ev)
    task = asyncio.create_task(listen())
    await asyncio.sleep(2)
    proc = await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "prefect"), "worker", "start",
        "-p", "{token}-kpool", "-t", "kubernetes", "-n", "{worker}", "--run-once",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    rc = await proc.wait()
    for _ in range(50):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    task.cancel()
    print("rc", rc)
    for ev in seen:
        print(ev.event, ev.id, ev.follows)

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "PREFECT_CLI_PROMPT": "false"})
    lines = out.stdout.split("\n")
    assert lines[0] == "rc 0", out.stdout + out.stderr
    events = [line.split(" ") for line in lines[1:] if line]
    assert [e[0] for e in events] == ["prefect.worker.started", "prefect.worker.stopped"], out.stdout
    (_, started_id, _), (_, _, follows) = events
    assert follows == started_id
    pool = httpx.get(f"{api_url()}/work_pools/{token}-kpool", timeout=30).json()
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == kubernetes_template()
