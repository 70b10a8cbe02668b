"""A sequence of `PATCH /deployments/{id}` schedule changes (the slug rules `serve()` and
`prefect deploy` rely on), sent to any server; the answers and the schedules after each step,
normalised (schedule ids as the order they were first seen, no timestamps), so two servers'
runs compare equal when they behave alike. reference/capture_schedule_patches.py records the
open-source server's; test_schedule_patches.py compares Orrery's with it."""

import json
import uuid

import httpx

CRON_9 = {"cron": "0 9 * * *"}
CRON_10 = {"cron": "0 10 * * *", "timezone": "Europe/Paris"}
HOURLY = {"interval": 3600}
DAILY = {"rrule": "FREQ=DAILY;BYHOUR=6"}

STEPS = [
    ("keep all on an empty list", []),
    ("update a in place", [{"slug": "a", "schedule": CRON_10}]),
    ("create c", [{"slug": "c", "schedule": DAILY}]),
    ("rename a to a2", [{"slug": "a2", "replaces": "a"}]),
    ("two replace b", [{"slug": "x", "replaces": "b"}, {"slug": "y", "replaces": "b"}]),
    ("rename onto an existing slug", [{"slug": "c", "replaces": "a2"}]),
    ("new slug without a schedule", [{"slug": "new"}]),
    ("a schedule without a slug", [{"schedule": {"interval": 60}}]),
    ("change fields", [{"slug": "a2", "active": False, "max_scheduled_runs": 5,
                        "parameters": {"n": 1}}]),
    ("name only", [{"slug": "a2"}]),
    ("swap by replaces", [{"slug": "b", "replaces": "c"}, {"slug": "c", "replaces": "b"}]),
]


def run(root: str) -> dict:
    api = httpx.Client(base_url=root.rstrip("/") + "/api", timeout=30)
    token = uuid.uuid4().hex[:8]
    flow = api.post("/flows/", json={"name": f"sched-{token}"}).json()["id"]
    ids: dict[str, str] = {}

    def order(dep: str) -> list:
        """The slugs in the order both list routes give them (newest updated first)."""
        listed = [s["slug"] for s in api.get(f"/deployments/{dep}/schedules").json()]
        assert listed == [s["slug"] for s in api.get(f"/deployments/{dep}").json()["schedules"]]
        return listed

    def schedules(dep: str) -> list:
        out = []
        listed = api.get(f"/deployments/{dep}/schedules").json()
        # Labelled in an order that does not depend on the listing's (checked in `order`).
        listed.sort(key=lambda s: (s["slug"] or "", json.dumps(s["schedule"], sort_keys=True)))
        for s in listed:
            label = ids.setdefault(s["id"], f"s{len(ids) + 1}")
            sched = dict(s["schedule"])
            if "anchor_date" in sched:
                sched["anchor_date"] = "<ts>"
            out.append({"id": label, "slug": s["slug"], "schedule": sched, "active": s["active"],
                        "max_scheduled_runs": s["max_scheduled_runs"],
                        "parameters": s["parameters"]})
        return out

    def deployment(name: str, scheds: list) -> str:
        r = api.post("/deployments/", json={"name": f"{name}-{token}", "flow_id": flow,
                                            "schedules": scheds})
        assert r.status_code in (200, 201), r.text
        return r.json()["id"]

    def patch(dep: str, body: list) -> dict:
        r = api.patch(f"/deployments/{dep}", json={"schedules": body})
        answer = r.json() if r.content else None
        if isinstance(answer, dict) and "exception_detail" in answer:
            answer = [d["type"] for d in answer["exception_detail"]]
        return {"status": r.status_code, "answer": answer, "schedules": schedules(dep),
                "order": order(dep)}

    slugged = deployment("slugged", [{"slug": "a", "schedule": CRON_9},
                                     {"slug": "b", "schedule": HOURLY}])
    out = {"created": {"schedules": schedules(slugged), "order": order(slugged)}}
    for name, body in STEPS:
        out[name] = patch(slugged, body)
    plain = deployment("plain", [{"schedule": CRON_9}, {"schedule": HOURLY}])
    out["unslugged: replaced by the list"] = patch(plain, [{"slug": "s", "schedule": DAILY}])
    out["unslugged: keep on no schedules key"] = {
        "status": api.patch(f"/deployments/{plain}", json={"description": "d"}).status_code,
        "schedules": schedules(plain),
    }
    return out
