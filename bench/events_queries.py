"""Times the four event queries of GitHub issue 16 against a server holding bench/seed_events.rs's
history (or bench/events_reference_load.py's, the same), as the Prefect UI and client send them,
on ONE kept-alive httpx client:

  feed      POST /events/filter {"filter": {"occurred": 7 days, "order": "DESC"}, "limit": 50}
  resource  POST /events/filter, one flow run's events (`any_resource.id`, run 7), 7 days
  prefix    POST /events/filter, `event.prefix` ["prefect.flow-run."], 7 days
  count     POST /events/count-by/event, the last day

    python bench/events_queries.py BASE_URL EVENTS DAYS NOW_EPOCH [SECONDS] [CALLS] [WARMUP]

BASE_URL is the API root (http://127.0.0.1:4200/api). Each query: WARMUP calls (default 3), then
calls until CALLS (default 100) were made or SECONDS (default 20) have passed, at least 5.
Prints one JSON line: per query p50/p99/mean/max ms, the calls, the errors, what the answer held
(`total`, the ids of the page, or the counts by event) and whether that is what the history
defines (`expected_ok`). A wrong answer is also printed to stderr as MISMATCH.
"""

import json
import math
import statistics
import sys
import time
from datetime import datetime, timezone

import httpx

NAMES = [
    "prefect.flow-run.Scheduled",
    "prefect.flow-run.Pending",
    "prefect.flow-run.Running",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.task-run.Pending",
    "prefect.task-run.Running",
    "prefect.task-run.Completed",
    "prefect.deployment.updated",
    "custom.order.received",
]
RUN = 7
RUN_RESOURCE = f"prefect.flow-run.0f0f0000-0000-4000-8000-{RUN:012x}"
DAY_US = 86_400_000_000


def iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, timezone.utc).isoformat()


def event_id(i: int) -> str:
    return f"0e0e0000-0000-4000-8000-{i:012x}"


def expected(total: int, days: int, now: int) -> dict:
    """What the history of seed_events.rs answers to each query (event i = 0 is the newest)."""
    span, now_us = days * DAY_US, now * 1_000_000

    def occurred(i: int) -> int:
        return now_us - span * i // max(total, 1)

    # feed: every event is within the 7 days
    feed_ids = [event_id(i) for i in range(min(50, total))]
    # one run's events: blocks of 10 whose run is RUN, their 5 flow-run events
    mine = [
        i
        for b in range(RUN, (total + 9) // 10, 20_000)
        for i in range(b * 10, b * 10 + 5)
        if i < total
    ]
    # name prefix: i % 10 < 5
    prefix_total = sum(min(5, max(0, total - b * 10)) for b in range((total + 9) // 10))
    prefix_ids = [event_id(i) for i in range(min(total, 100)) if i % 10 < 5][:50]
    # the last day: the events with occurred >= now - 1 day (i up to `last`, by bisection)
    lo, hi = 0, total  # occurred(lo) >= limit; find the first i with occurred(i) < limit
    limit = now_us - DAY_US
    while lo < hi:
        mid = (lo + hi) // 2
        if occurred(mid) >= limit:
            lo = mid + 1
        else:
            hi = mid
    in_day = lo  # events 0 .. in_day-1
    counts = {}
    for k, name in enumerate(NAMES):
        n = (in_day - k + 9) // 10 if in_day > k else 0
        if n:
            counts[name] = n
    return {
        "feed": {"total": total, "ids": feed_ids},
        "resource": {"total": len(mine), "ids": [event_id(i) for i in mine[:50]]},
        "prefix": {"total": prefix_total, "ids": prefix_ids},
        "count": {"counts": counts},
    }


def queries(days: int, now: int) -> list:
    now_us = now * 1_000_000
    week = {"since": iso(now_us - days * DAY_US), "until": iso(now_us)}
    day = {"since": iso(now_us - DAY_US), "until": iso(now_us)}
    return [
        ("feed", "/events/filter",
         {"filter": {"occurred": week, "order": "DESC"}, "limit": 50}),
        ("resource", "/events/filter",
         {"filter": {"occurred": week, "any_resource": {"id": [RUN_RESOURCE]}}, "limit": 50}),
        ("prefix", "/events/filter",
         {"filter": {"occurred": week, "event": {"prefix": ["prefect.flow-run."]}}, "limit": 50}),
        ("count", "/events/count-by/event", {"filter": {"occurred": day}}),
    ]


def summary(name: str, answer) -> dict:
    if name == "count":
        return {
            "counts": {g["value"]: g["count"] for g in answer},
            "spans": {g["value"]: [g.get("start_time"), g.get("end_time")] for g in answer},
        }
    return {"total": answer.get("total"), "ids": [e["id"] for e in answer.get("events", [])]}


def pct(xs: list, p: float) -> float:
    """Nearest rank: with fewer than 100 calls, the p99 is the slowest call."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main() -> None:
    base = sys.argv[1].rstrip("/")
    total, days, now = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 20.0
    calls = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    warmup = int(sys.argv[7]) if len(sys.argv) > 7 else 3
    want = expected(total, days, now)
    out = {"bench": "events-queries", "events": total, "days": days, "now": now, "queries": {}}
    with httpx.Client(base_url=base, timeout=300) as client:
        for name, path, body in queries(days, now):
            errors, first_error, answer = 0, None, None
            for _ in range(warmup):
                r = client.post(path, json=body)
                if r.status_code == 200:
                    answer = r.json()
            times = []
            t_end = time.perf_counter() + seconds
            while len(times) < calls and (time.perf_counter() < t_end or len(times) < 5):
                t0 = time.perf_counter()
                r = client.post(path, json=body)
                _ = r.content
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code == 200:
                    answer = r.json()
                else:
                    errors += 1
                    first_error = first_error or f"HTTP {r.status_code}: {r.text[:300]}"
            got = summary(name, answer) if answer is not None else None
            ok = got is not None and all(got.get(k) == v for k, v in want[name].items())
            if not ok:
                print(f"MISMATCH {base} {name}: expected "
                      f"{json.dumps(want[name])[:400]} got {json.dumps(got)[:400]}",
                      file=sys.stderr)
            out["queries"][name] = {
                "request": {"path": path, "body": body},
                "calls": len(times),
                "errors": errors,
                "first_error": first_error,
                "p50_ms": round(statistics.median(times), 2),
                "p99_ms": round(pct(times, 99), 2),
                "mean_ms": round(statistics.fmean(times), 2),
                "max_ms": round(max(times), 2),
                "answer": got,
                "expected_ok": ok,
            }
            print(f"[events_queries] {name}: p50 {out['queries'][name]['p50_ms']} ms, "
                  f"p99 {out['queries'][name]['p99_ms']} ms, {len(times)} calls, "
                  f"{'ok' if ok else 'WRONG ANSWER'}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
