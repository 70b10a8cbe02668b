"""How soon a task run the client reports (a `prefect.task-run.*` event through `POST /events`,
as the 3.x client reports task runs) can be read back (`GET /task_runs/{id}` answering 200), on
one kept-alive connection, at a low steady rate — the latency a UI or a client polling for its
task runs sees, not throughput.

    python bench/task_run_latency.py http://127.0.0.1:4200/api --runs 100 --rate 5
"""

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone

import httpx


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("api")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rate", type=float, default=5.0)
    a = ap.parse_args()
    api = a.api.rstrip("/")
    c = httpx.Client(timeout=30)
    flow = c.post(f"{api}/flows/", json={"name": "latency"}).json()
    run = c.post(f"{api}/flow_runs/", json={"flow_id": flow["id"], "name": "latency"}).json()
    lat = []
    for i in range(a.runs):
        tid = str(uuid.uuid4())
        ev = {
            "id": str(uuid.uuid4()), "occurred": datetime.now(timezone.utc).isoformat(),
            "event": "prefect.task-run.Completed",
            "resource": {"prefect.resource.id": f"prefect.task-run.{tid}", "prefect.resource.name": f"t-{i}",
                         "prefect.orchestration": "client"},
            "related": [{"prefect.resource.id": f"prefect.flow-run.{run['id']}", "prefect.resource.role": "flow-run"}],
            "payload": {
                "validated_state": {"type": "COMPLETED", "name": "Completed", "message": "", "state_details": {}, "data": None},
                "task_run": {"name": f"t-{i}", "task_key": f"t-{tid}", "dynamic_key": "0", "tags": [], "labels": {},
                             "task_inputs": {}, "empirical_policy": {}, "run_count": 1, "flow_run_run_count": 1,
                             "total_run_time": 0.0},
            },
        }
        start = time.perf_counter()
        c.post(f"{api}/events", json=[ev]).raise_for_status()
        while c.get(f"{api}/task_runs/{tid}").status_code != 200:
            if time.perf_counter() - start > 10:
                print(f"task run {tid} not readable after 10 s", file=sys.stderr)
                return 1
            time.sleep(0.002)
        lat.append((time.perf_counter() - start) * 1000)
        time.sleep(max(0.0, 1 / a.rate - (time.perf_counter() - start)))
    q = statistics.quantiles(lat, n=100, method="inclusive")
    print(json.dumps({"runs": a.runs, "p50_ms": round(q[49], 1), "p90_ms": round(q[89], 1), "p99_ms": round(q[98], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
