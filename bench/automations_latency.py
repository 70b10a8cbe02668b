"""Trigger-to-action latency of one server (GitHub issue 16): an automation that runs a
deployment on `bench.ping`, N events sent through `POST /events` at a steady rate on one kept-alive
connection, and for each event the time from its `occurred` (set when sent) to the `occurred` of
the `prefect.automation.action.executed` event that reports its action — both stamped on this
machine's clock. Every action must be reported once; a missing or doubled one fails the run.

    python bench/automations_latency.py http://127.0.0.1:4200/api --events 300 --rate 20 --out x.json
"""

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone

import httpx


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def parse(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def all_events(c: httpx.Client, api: str, name: str, since: str) -> list:
    page = c.post(f"{api}/events/filter", json={"filter": {"event": {"name": [name]}, "occurred": {"since": since}}, "limit": 50}).json()
    out = []
    while True:
        out.extend(page.get("events") or [])
        nxt = page.get("next_page")
        if not nxt:
            return out
        page = c.get(nxt).json()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("api")
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--rate", type=float, default=20.0, help="events per second")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    api = a.api.rstrip("/")
    c = httpx.Client(timeout=30)
    tag = uuid.uuid4().hex[:8]
    def ok(r: httpx.Response) -> dict:
        if r.status_code >= 300:
            raise SystemExit(f"{r.request.method} {r.request.url}: {r.status_code} {r.text}")
        return r.json()

    flow = ok(c.post(f"{api}/flows/", json={"name": f"bench-target-{tag}"}))
    dep = ok(c.post(f"{api}/deployments/", json={"name": "target", "flow_id": flow["id"]}))
    name = f"bench.ping.{tag}"
    r = c.post(f"{api}/automations/", json={
        "name": f"latency-{tag}",
        "trigger": {"type": "event", "posture": "Reactive", "expect": [name], "threshold": 1, "within": 0},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": dep["id"]}],
    })
    r.raise_for_status()
    automation = r.json()["id"]
    time.sleep(2)  # the reference loads automations on a change notification
    since = iso(time.time() - 5)
    sent = {}
    start = time.time()
    for i in range(a.events):
        due = start + i / a.rate
        if due > time.time():
            time.sleep(due - time.time())
        eid = str(uuid.uuid4())
        now = time.time()
        ev = {"id": eid, "occurred": iso(now), "event": name,
              "resource": {"prefect.resource.id": f"bench.thing.{i}"}, "related": [], "payload": {}}
        resp = c.post(f"{api}/events", json=[ev])
        resp.raise_for_status()
        sent[eid] = now
    deadline = time.time() + a.timeout
    done = []
    while time.time() < deadline:
        done = [e for e in all_events(c, api, "prefect.automation.action.executed", since)
                if e["resource"]["prefect.resource.id"] == f"prefect.automation.{automation}"]
        if len(done) >= a.events:
            break
        time.sleep(1)
    latencies = []
    seen = {}
    for e in done:
        trig = [r["prefect.resource.id"] for r in e.get("related", []) if r.get("prefect.resource.role") == "triggering-event"]
        if not trig:
            continue
        eid = trig[0].removeprefix("prefect.event.")
        seen[eid] = seen.get(eid, 0) + 1
        if eid in sent:
            latencies.append((parse(e["occurred"]) - sent[eid]) * 1000)
    doubled = sum(1 for n in seen.values() if n > 1)
    missing = len([k for k in sent if k not in seen])
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) >= 2 else [float("nan")] * 99
    result = {
        "events": a.events, "rate": a.rate, "executed": len(done), "missing": missing, "doubled": doubled,
        "p50_ms": round(q[49], 1), "p90_ms": round(q[89], 1), "p99_ms": round(q[98], 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
    }
    json.dump(result, open(a.out, "w"))
    print(json.dumps(result))
    return 0 if missing == 0 and doubled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
