"""The flow script run against the reference server by capture_orion_core.py.

Mapped tasks, a task retried once (a delay, so AwaitingRetry is recorded), tags, log_prints=True and a subflow.
"""

from prefect import flow, task, tags
from prefect.logging import get_run_logger

_attempts = {"n": 0}


@task(tags=["ref-task-tag"])
def double(x: int) -> int:
    return x * 2


@task(retries=1, retry_delay_seconds=1)
def flaky() -> str:
    _attempts["n"] += 1
    if _attempts["n"] == 1:
        raise ValueError("first attempt fails")
    print("flaky succeeded on attempt", _attempts["n"])
    return "ok"


@flow(name="ref-child", log_prints=True)
def child(n: int) -> int:
    print(f"child got {n}")
    return n + 1


@flow(name="ref-parent", log_prints=True)
def parent(n: int = 3) -> dict:
    get_run_logger().info("parent starting with n=%s", n)
    doubled = [f.result() for f in double.map(range(n))]
    flaky_result = flaky()
    print("printed from the parent flow")
    sub = child(n)
    return {"doubled": doubled, "flaky": flaky_result, "child": sub}


if __name__ == "__main__":
    with tags("ref-flow-tag"):
        print(parent())
