"""Scenarios for variables, artifacts, concurrency limits and pauses, run in a subprocess with
the real Prefect client, like flows/scenarios.py:

    python tests/compat/flows/scenarios_extra.py <scenario> <token>

Every flow runs inside `tags(<token>)`. Settings come from the environment (COMPAT_* below).
The last line printed is `COMPAT_RESULT {"flow_run_id", "state_type", "result"}`.
"""

import json
import os
import sys
import threading
import time

from prefect import flow, tags, task, unmapped
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.variables import Variable

TOKEN = sys.argv[2] if len(sys.argv) > 2 else "no-token"
_log_lock = threading.Lock()


def record(path: str, entry: dict) -> None:
    """Appends one JSON line to the log file the test reads."""
    with _log_lock, open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


# ---------------------------------------------------------------- variables
@flow(name="compat-variables")
def variables_flow() -> dict:
    name = f"{TOKEN}-var"
    missing = Variable.get(f"{TOKEN}-missing", default="fallback")
    Variable.set(name, {"x": [1, 2]}, tags=["compat"])
    first = Variable.get(name)
    try:
        Variable.set(name, "refused")
        refused = False
    except ValueError:
        refused = True
    Variable.set(name, [3, "three"], overwrite=True)
    second = Variable.get(name)
    Variable.set(f"{TOKEN}-gone", 1)
    Variable.unset(f"{TOKEN}-gone")
    gone = Variable.get(f"{TOKEN}-gone", default=None)
    return {"missing": missing, "first": first, "refused": refused, "second": second, "gone": gone}


# ---------------------------------------------------------------- artifacts
@task
def table_task() -> str:
    artifact_id = create_table_artifact(
        key=f"{TOKEN}-table", table=[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], description="a table"
    )
    return str(artifact_id)


@flow(name="compat-artifacts")
def artifacts_flow() -> dict:
    md1 = create_markdown_artifact(key=f"{TOKEN}-md", markdown="# Hello", description="first")
    md2 = create_markdown_artifact(key=f"{TOKEN}-md", markdown="# Hello again", description="second")
    table = table_task()
    link = create_link_artifact(key=f"{TOKEN}-link", link="https://example.com", link_text="example")
    image = create_image_artifact(image_url="https://example.com/a.png", key=f"{TOKEN}-image")
    progress = create_progress_artifact(progress=0.0, key=f"{TOKEN}-progress", description="work")
    update_progress_artifact(progress, progress=50.0)
    update_progress_artifact(progress, progress=100.0, description="done")
    return {
        "md1": str(md1),
        "md2": str(md2),
        "table": table,
        "link": str(link),
        "image": str(image),
        "progress": str(progress),
    }


# ---------------------------------------------------------------- global concurrency
@task
def occupy(i: int, name: str, log: str) -> int:
    with concurrency(name, occupy=1):
        start = time.time()
        time.sleep(1.0)
        record(log, {"i": i, "start": start, "end": time.time()})
    return i


@flow(name="compat-global-concurrency")
def global_concurrency_flow() -> list:
    name, log = os.environ["COMPAT_LIMIT_NAME"], os.environ["COMPAT_LOG"]
    futures = occupy.map(range(6), name=unmapped(name), log=unmapped(log))
    return [f.result() for f in futures]


# ---------------------------------------------------------------- tag concurrency (v1 limits)
@task
def tagged(i: int, tag: str, log: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.runtime import task_run

    start = time.time()
    with get_client(sync_client=True) as client:
        holders = [str(h) for h in client.read_concurrency_limit_by_tag(tag).active_slots]
    time.sleep(0.5)
    record(log, {"i": i, "start": start, "end": time.time(), "task_run_id": str(task_run.id), "holders": holders})
    return i


@flow(name="compat-tag-concurrency")
def tag_concurrency_flow() -> list:
    tag, log = os.environ["COMPAT_TAG"], os.environ["COMPAT_LOG"]
    limited = tagged.with_options(tags=[tag])
    futures = limited.map(range(3), tag=unmapped(tag), log=unmapped(log))
    return [f.result() for f in futures]


# ---------------------------------------------------------------- rate limits
@flow(name="compat-rate-limit")
def rate_limit_flow() -> list:
    name = os.environ["COMPAT_LIMIT_NAME"]
    stamps = []
    for _ in range(4):
        rate_limit(name, occupy=1)
        stamps.append(time.time())
    return stamps


# ---------------------------------------------------------------- pause and wait for input
class Approval(RunInput):
    approved: bool
    reason: str = "none"


@flow(name="compat-pause-input")
def pause_input_flow() -> dict:
    answer = pause_flow_run(wait_for_input=Approval, timeout=120, poll_interval=1)
    return {"approved": answer.approved, "reason": answer.reason}


SCENARIOS = {
    "variables": variables_flow,
    "artifacts": artifacts_flow,
    "global_concurrency": global_concurrency_flow,
    "tag_concurrency": tag_concurrency_flow,
    "rate_limit": rate_limit_flow,
    "pause_input": pause_input_flow,
}


def main() -> None:
    name = sys.argv[1]
    with tags(TOKEN):
        state = SCENARIOS[name](return_state=True)
        if state.is_completed():
            result = state.result()
        else:
            result = str(state.result(raise_on_failure=False))
        out = {
            "flow_run_id": str(state.state_details.flow_run_id),
            "state_type": state.type.value,
            "result": result,
        }
    print("COMPAT_RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
