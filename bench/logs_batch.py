"""Time of one `POST /logs/` of N logs (the client's log handler sends batches; a flow that
logs heavily sends large ones), median of REPEAT requests on a kept-alive connection.

    python bench/logs_batch.py http://127.0.0.1:4200/api [N] [REPEAT]
"""

import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone

import httpx


def main() -> None:
    api = sys.argv[1].rstrip("/")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    run = str(uuid.uuid4())
    now = datetime.now(timezone.utc).isoformat()
    body = [
        {
            "name": "prefect.flow_runs",
            "level": 20,
            "message": f"log line {i} of a busy flow, with some text in it",
            "timestamp": now,
            "flow_run_id": run,
            "task_run_id": None,
        }
        for i in range(n)
    ]
    payload = json.dumps(body)
    times = []
    with httpx.Client(timeout=120) as client:
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.post(
                f"{api}/logs/", content=payload, headers={"content-type": "application/json"}
            )
            times.append(time.perf_counter() - t0)
            assert r.status_code == 201, (r.status_code, r.text[:200])
    print(
        json.dumps(
            {
                "bench": "logs-batch",
                "logs": n,
                "repeat": repeat,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
