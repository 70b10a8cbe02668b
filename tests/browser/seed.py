"""Seeds a server with what Prefect's UIs show, through the real `prefect` client: flows with
tasks, a task failing after a retry, a subflow, logs, artifacts, a process work pool with a
deployment on an hourly schedule, a block, a variable, and concurrency limits (v1 and v2).
Prints the ids the page walk visits as one JSON object."""

import asyncio
import json

from prefect import flow, get_client, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.system import Secret
from prefect.client.schemas.actions import (
    DeploymentScheduleCreate,
    GlobalConcurrencyLimitCreate,
    WorkPoolCreate,
)
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.variables import Variable
from prefect.workers.process import ProcessWorker


@task(retries=1, retry_delay_seconds=0)
def flaky(x: int) -> int:
    raise ValueError(f"boom {x}")


@task
def double(x: int) -> int:
    create_markdown_artifact(f"# doubled {x}", key="doubled")
    return 2 * x


@flow
def child(n: int = 1) -> int:
    return double(n)


@flow(log_prints=True)
def parent(n: int = 3) -> int:
    print("starting the parent")
    total = sum(double(i) for i in range(n))
    total += child(5)
    create_table_artifact([{"a": 1, "b": 2}], key="totals")
    try:
        flaky(2)
    except ValueError:
        print("flaky failed as expected")
    return total


@flow
def fails() -> None:
    raise RuntimeError("this flow fails")


def main() -> None:
    parent()
    try:
        fails()
    except RuntimeError:
        pass
    block_id = Secret(value="s3cr3t").save("browser-secret", overwrite=True)
    Variable.set("browser_variable", {"answer": 42, "list": [1, 2]}, overwrite=True)
    asyncio.run(register(str(block_id)))


async def register(block_id: str) -> None:
    async with get_client() as client:
        runs = await client.read_flow_runs()
        by_name = {}
        for r in runs:
            f = await client.read_flow(r.flow_id)
            by_name.setdefault(f.name, r)
        parent_run = by_name["parent"]
        task_runs = await client.read_task_runs()
        failed_task = next(t for t in task_runs if t.state and t.state.type.value == "FAILED")
        await client.create_work_pool(
            WorkPoolCreate(
                name="browser-pool",
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            ),
            overwrite=True,
        )
        flow_id = parent_run.flow_id
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="hourly",
            work_pool_name="browser-pool",
            entrypoint="seed.py:parent",
            parameter_openapi_schema={
                "type": "object",
                "properties": {"n": {"type": "integer", "default": 3, "title": "n"}},
            },
            schedules=[DeploymentScheduleCreate(schedule=IntervalSchedule(interval=3600))],
        )
        await client.create_concurrency_limit(tag="browser-db", concurrency_limit=2)
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="browser-global", limit=3)
        )
        print(
            json.dumps(
                {
                    "flow_run": str(parent_run.id),
                    "flow": str(flow_id),
                    "task_run": str(failed_task.id),
                    "deployment": str(deployment_id),
                    "work_pool": "browser-pool",
                    "block": block_id,
                }
            )
        )


if __name__ == "__main__":
    main()
