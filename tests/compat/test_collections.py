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
    made = cli("work-pool", "create", f"{token}-k8s", "-t", "kubernetes")
    assert made.returncode == 0, made.stdout + made.stderr
    pool = httpx.get(f"{api_url()}/work_pools/{token}-k8s", timeout=30).json()
    expected = json.loads(BUNDLED.read_text())["prefect-kubernetes"]["kubernetes"]
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == expected["default_base_job_configuration"]
