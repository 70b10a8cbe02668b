"""Flows that tests/compat/test_deployments.py deploys (prefect.yaml, `from_source(...).deploy`,
`serve`) and runs through a process worker or a served runner.

Each run of `my_flow` writes `out/<flow run id>.json` next to this file ({"n", "label", "pid"}),
so a test can prove that the run happened in a worker/runner process with the parameters the
server handed out. `sleeper` writes its PID to `pid_file` and sleeps: the cancellation test kills it.
"""

import json
import os
import time
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

HERE = Path(__file__).resolve().parent


@flow
def my_flow(n: int, label: str = "none") -> int:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    record = {"n": n, "label": label, "pid": os.getpid()}
    (out / f"{flow_run.id}.json").write_text(json.dumps(record))
    return n * 2


@flow(name="compat-sleeper")
def sleeper(pid_file: str, seconds: int = 120) -> str:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke up"
