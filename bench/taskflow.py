"""Benchmark (b): a flow with N mapped trivial tasks, run with the real prefect client.

Usage: python taskflow.py N OUT.json FLOW_RUN_NAME
Runs the flow (its run named FLOW_RUN_NAME, so bench/run.sh can poll for it before it exists)
against PREFECT_API_URL, waits on every task result, and writes
{"flow_run_id", "state", "flow_s", "results_ok"} to OUT.json as soon as the flow has returned.
bench/run.sh then polls the server until it has recorded all N task runs, while this process
exits (the client sends its remaining events at exit), and notes when it has exited.
"""

import json
import os
import sys
import time

from prefect import flow, task


@task
def t(x):
    return x


@flow(name="bench-tasks")
def many(n: int):
    futures = t.map(range(n))
    return [f.result() for f in futures]


def main() -> None:
    n = int(sys.argv[1])
    out = sys.argv[2]
    name = sys.argv[3]
    t0 = time.time()
    state = many.with_options(flow_run_name=name)(n, return_state=True)
    flow_s = time.time() - t0
    results = state.result(raise_on_failure=False)
    # Written as soon as the flow has returned, before the interpreter's exit (where the client
    # drains its events), and atomically: bench/run.sh starts polling when the file appears.
    with open(out + ".tmp", "w") as fh:
        json.dump(
            {
                "flow_run_id": str(state.state_details.flow_run_id),
                "state": state.type.value,
                "flow_s": round(flow_s, 3),
                "results_ok": isinstance(results, list) and results == list(range(n)),
            },
            fh,
        )
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
