"""Flow scenarios that the compat tests run in a subprocess with the real Prefect client.

    python tests/compat/flows/scenarios.py <scenario> <token>

Every scenario runs inside `tags(<token>)`, so each test finds its own runs by that tag. The
last line printed is `COMPAT_RESULT <json>` with at least `flow_run_id`, `state_type` and
`result` (the flow's return value, or the exception's text for a failed flow).
"""

import asyncio
import json
import sys

from prefect import flow, get_run_logger, tags, task

TOKEN = sys.argv[2] if len(sys.argv) > 2 else "no-token"


# ---------------------------------------------------------------- mapped tasks
@task
def double(x: int) -> int:
    return 2 * x


@flow(name="compat-mapped")
def mapped_flow(n: int = 4) -> list:
    futures = double.map(range(n))
    return [f.result() for f in futures]


# ---------------------------------------------------------------- retries
_attempts = {"flaky": 0}


@task(retries=1, retry_delay_seconds=1)
def flaky() -> str:
    _attempts["flaky"] += 1
    if _attempts["flaky"] == 1:
        raise ValueError("flaky fails on its first attempt")
    return f"ok after {_attempts['flaky']} attempts"


@flow(name="compat-retries")
def retries_flow() -> str:
    return flaky()


# ---------------------------------------------------------------- failing task, surviving flow
@task
def explode() -> None:
    raise RuntimeError("task exploded on purpose")


@task
def fine() -> str:
    return "fine"


@flow(name="compat-survivor")
def survivor_flow() -> dict:
    bad = explode(return_state=True)
    good = fine()
    return {"bad_state": bad.type.value, "good": good}


# ---------------------------------------------------------------- failing flow
@flow(name="compat-failing")
def failing_flow() -> None:
    fine()
    raise ValueError("flow failed on purpose")


# ---------------------------------------------------------------- subflows
@flow(name="compat-child")
def child_flow(x: int) -> int:
    return double(x) + 1


@flow(name="compat-parent")
def parent_flow() -> list:
    return [child_flow(1), child_flow(2)]


# ---------------------------------------------------------------- submit + futures
@task
def add(x: int, y: int) -> int:
    return x + y


@flow(name="compat-submit")
def submit_flow() -> int:
    a = add.submit(1, 2)
    b = add.submit(a, 10)  # depends on a through its future
    c = add.submit(100, 200)
    return b.result() + c.result()


# ---------------------------------------------------------------- tags
@task(tags=["compat-task-tag"])
def tagged_task() -> str:
    return "tagged"


@task
def untagged_task() -> str:
    return "untagged"


@flow(name="compat-tags")
def tags_flow() -> list:
    with tags("compat-inner-tag"):
        inner = tagged_task()
    return [inner, untagged_task()]


# ---------------------------------------------------------------- logs
@task
def chatty_task() -> None:
    print(f"task print {TOKEN}")
    get_run_logger().warning(f"task warning {TOKEN}")


@flow(name="compat-logs", log_prints=True)
def logs_flow() -> None:
    get_run_logger().info(f"flow info {TOKEN}")
    print(f"flow print {TOKEN}")
    chatty_task()


# ---------------------------------------------------------------- results
@task
def make_payload(n: int) -> dict:
    return {"n": n, "squares": [i * i for i in range(n)], "label": f"payload-{n}"}


@flow(name="compat-results")
def results_flow(n: int = 4) -> dict:
    payload = make_payload(n)
    return {"payload": payload, "total": sum(payload["squares"])}


# ---------------------------------------------------------------- names, for filters/sorts
@flow(name="compat-named")
def named_flow(fail: bool = False) -> str:
    if fail:
        raise RuntimeError("named flow failed")
    return "named"


def run_named() -> dict:
    """Three runs named <token>-a, <token>-c (fails), <token>-b, in that order."""
    ids = {}
    for suffix, fail in (("a", False), ("c", True), ("b", False)):
        state = named_flow.with_options(flow_run_name=f"{TOKEN}-{suffix}")(
            fail=fail, return_state=True
        )
        ids[suffix] = str(state.state_details.flow_run_id)
    return {"flow_run_id": ids["a"], "state_type": "COMPLETED", "result": ids}


# ---------------------------------------------------------------- async
@task
async def async_square(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * x


@flow(name="compat-async")
async def async_flow() -> int:
    values = await asyncio.gather(*[async_square(i) for i in range(3)])
    return sum(values)


SCENARIOS = {
    "mapped": mapped_flow,
    "retries": retries_flow,
    "survivor": survivor_flow,
    "failing": failing_flow,
    "subflow": parent_flow,
    "submit": submit_flow,
    "tags": tags_flow,
    "logs": logs_flow,
    "results": results_flow,
    "async": async_flow,
}


def main() -> None:
    name = sys.argv[1]
    with tags(TOKEN):
        if name == "named":
            out = run_named()
        else:
            fn = SCENARIOS[name]
            if name == "async":
                state = asyncio.run(fn(return_state=True))
            else:
                state = fn(return_state=True)
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
