#!/usr/bin/env python3
"""Times the routes the UI and the client call against a server holding `million_load.py`'s data,
on kept-alive connections and on new ones, and prints one JSON object per route.

    python3 bench/million_routes.py BASE_URL RUNS NOW_EPOCH [SECONDS_PER_ROUTE]

Each route: 2 warm-up calls, then calls on one kept-alive connection until 40 calls or
SECONDS_PER_ROUTE (default 6) have passed (at least 3), then the same on a new connection per call
(at most 15). Requests ask for gzip, as the `prefect` client does. Besides latencies, each line
carries what the answer held (`rows`: list length or the number answered; `digest`: a hash of the
ids in a list answer, or of the counts of a history), so `million.sh` can tell whether two servers
gave the same answer.
"""

import datetime as dt
import gzip
import hashlib
import http.client
import json
import sys
import time
import urllib.parse

HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}


def uid(kind, i):
    return f"{kind:08x}-0000-4000-8000-{i:012x}"


def iso(epoch):
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def routes(runs, now):
    mid = runs // 2
    run, task, flow = uid(2, mid), uid(4, 2 * mid - 1), uid(1, 1)
    week = {"after_": iso(now - 7 * 86400), "before_": iso(now)}
    page = {"limit": 50, "offset": 0}
    failed = {"state": {"type": {"any_": ["FAILED", "CRASHED"]}}}
    history = {
        "history_start": iso(now - 7 * 86400),
        "history_end": iso(now),
        "history_interval_seconds": 3600,
    }
    return [
        ("runs page: filter START_TIME_DESC", "POST", "/flow_runs/filter",
         {**page, "sort": "START_TIME_DESC"}),
        ("runs page, last 7 days", "POST", "/flow_runs/filter",
         {**page, "sort": "START_TIME_DESC", "flow_runs": {"start_time": week}}),
        ("failed runs, START_TIME_DESC", "POST", "/flow_runs/filter",
         {**page, "sort": "START_TIME_DESC", "flow_runs": failed}),
        ("one flow's runs", "POST", "/flow_runs/filter",
         {**page, "sort": "START_TIME_DESC", "flows": {"id": {"any_": [flow]}}}),
        ("upcoming: SCHEDULED, EXPECTED_START_TIME_ASC", "POST", "/flow_runs/filter",
         {**page, "sort": "EXPECTED_START_TIME_ASC",
          "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}),
        ("filter, default sort", "POST", "/flow_runs/filter", {**page}),
        ("paginate START_TIME_DESC", "POST", "/flow_runs/paginate",
         {"page": 1, "limit": 50, "sort": "START_TIME_DESC"}),
        ("flow_runs/count {}", "POST", "/flow_runs/count", {}),
        ("flow_runs/count failed, 7 days", "POST", "/flow_runs/count",
         {"flow_runs": {**failed, "start_time": week}}),
        ("task_runs/count {}", "POST", "/task_runs/count", {}),
        ("task_runs/filter EXPECTED_START_TIME_DESC", "POST", "/task_runs/filter",
         {**page, "sort": "EXPECTED_START_TIME_DESC"}),
        ("one run's task runs", "POST", "/task_runs/filter",
         {"flow_runs": {"id": {"any_": [run]}}, "sort": "EXPECTED_START_TIME_DESC"}),
        ("flow_runs/history 7 d hourly", "POST", "/flow_runs/history", history),
        ("task_runs/history 7 d hourly", "POST", "/task_runs/history", history),
        ("flows/filter", "POST", "/flows/filter", {"limit": 50}),
        ("GET flow run", "GET", f"/flow_runs/{run}", None),
        ("GET task run", "GET", f"/task_runs/{task}", None),
        ("flow run graph-v2", "GET", f"/flow_runs/{run}/graph-v2", None),
        ("filter offset 500000", "POST", "/flow_runs/filter",
         {"limit": 50, "offset": min(500000, runs // 2)}),
        ("ui/flows/next-runs (50 flows)", "POST", "/ui/flows/next-runs",
         {"flow_ids": [uid(1, i) for i in range(1, 51)]}),
        ("ui/flow_runs/history", "POST", "/ui/flow_runs/history",
         {"sort": "EXPECTED_START_TIME_DESC", "limit": 1000,
          "flow_runs": {"expected_start_time": week}}),
        ("ui/task_runs/dashboard/counts", "POST", "/ui/task_runs/dashboard/counts",
         {"task_runs": {"start_time": {"after_": iso(now - 86400)}}}),
    ]


def connect(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120)


def call(c, method, path, body):
    c.request(method, "/api" + path, body=None if body is None else json.dumps(body),
              headers=HEADERS)
    r = c.getresponse()
    data = r.read()
    if r.getheader("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    return r.status, data


def summary(answer):
    """(rows, digest) of an answer, to compare servers."""
    if isinstance(answer, int):
        return answer, str(answer)
    if isinstance(answer, dict) and "results" in answer:  # paginate
        ids = [x.get("id") for x in answer["results"]]
        return answer.get("count"), hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:8]
    if isinstance(answer, dict) and "id" in answer:  # one object
        return 1, answer["id"][:8]
    if isinstance(answer, dict) and "nodes" in answer:  # graph
        return len(answer["nodes"]), str(len(answer["nodes"]))
    if isinstance(answer, list):
        if answer and isinstance(answer[0], dict) and "states" in answer[0]:  # history
            counts = [sum(s.get("count_runs", 0) for s in b["states"]) for b in answer]
            return sum(counts), hashlib.sha1(json.dumps(counts).encode()).hexdigest()[:8]
        ids = [x.get("id") for x in answer if isinstance(x, dict)]
        return len(answer), hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:8]
    if isinstance(answer, dict):
        return len(answer), hashlib.sha1(
            json.dumps(answer, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return None, None


def pct(times, q):
    times = sorted(times)
    return times[min(len(times) - 1, int(q * len(times)))]


def measure(base, method, path, body, budget, max_calls, fresh):
    times = []
    c = None if fresh else connect(base)
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < 3 or time.perf_counter() - start < budget):
        if fresh:
            c = connect(base)
        t = time.perf_counter()
        status, data = call(c, method, path, body)
        times.append((time.perf_counter() - t) * 1000)
        if fresh:
            c.close()
        if status >= 400:
            break
    if not fresh:
        c.close()
    return times


def main():
    base, runs, now = sys.argv[1].rstrip("/"), int(sys.argv[2]), int(sys.argv[3])
    budget = float(sys.argv[4]) if len(sys.argv) > 4 else 6.0
    for name, method, path, body in routes(runs, now):
        c = connect(base)
        status, data = None, b""
        for _ in range(2):
            status, data = call(c, method, path, body)
        c.close()
        line = {"route": name, "path": path, "status": status}
        if status >= 400:
            line["detail"] = data[:160].decode(errors="replace")
            print(json.dumps(line), flush=True)
            print(f"[bench]   {name[:44]:44} {status}", file=sys.stderr)
            continue
        line["rows"], line["digest"] = summary(json.loads(data))
        line["bytes"] = len(data)
        for kind, fresh, cap in (("kept", False, 40), ("new", True, 15)):
            t = measure(base, method, path, body, budget, cap, fresh)
            line[kind] = {"n": len(t), "p50": round(pct(t, 0.5), 2), "p95": round(pct(t, 0.95), 2),
                          "max": round(max(t), 2)}
        print(json.dumps(line), flush=True)
        kept = line.get("kept", {})
        print(f"[bench]   {name[:44]:44} {status} kept p50 {kept.get('p50', '-')} ms",
              file=sys.stderr)


if __name__ == "__main__":
    main()
