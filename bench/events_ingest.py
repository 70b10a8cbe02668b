"""Event ingest rate, as clients send events: SOCKETS websockets on `/events/in` (the `prefect`
subprotocol, `auth` first), each sending its share of EVENTS events (~400 bytes each) one per text
frame as fast as it can, then a ping; the pong means the server has accepted every earlier frame
(the client uses pings as delivery checkpoints, and Orrery answers one only after the frames
before it are durable). Reports events/s from the first frame to the last pong.

    python bench/events_ingest.py http://127.0.0.1:4200/api [EVENTS] [SOCKETS]
        [--until-queryable [TIMEOUT_S]] [--event NAME]

With `--until-queryable` it then polls `POST /events/filter` (the events named NAME, default
`bench.ingest.sent`, that occurred since a minute before the first frame, `limit` 1) every 50 ms
until its `total` equals the events sent, and also reports events/s from the first frame to the
first answer holding them all (`queryable_s`, `queryable_events_per_s`; null after TIMEOUT_S,
default 300, or when the total has not moved for 60 s, with the last total seen in
`queryable_total`). Use a NAME no other event of the database has.

Prints one JSON line. Run it against two binaries minutes apart (see bench/README.md).
"""

import asyncio
import json
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import websockets


def event(n: int, name: str) -> str:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "occurred": datetime.now(timezone.utc).isoformat(),
            "event": name,
            "resource": {"prefect.resource.id": f"bench.thing.{n % 100}"},
            "related": [
                {
                    "prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}",
                    "prefect.resource.role": "flow-run",
                }
            ],
            "payload": {"n": n, "text": "x" * 200},
        }
    )


async def one_socket(url: str, count: int, start: int, name: str) -> None:
    async with websockets.connect(url, subprotocols=["prefect"], max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": None}))
        reply = json.loads(await ws.recv())
        assert reply.get("type") == "auth_success", reply
        for i in range(count):
            await ws.send(event(start + i, name))
        pong = await ws.ping()
        await pong


async def until_queryable(api: str, name: str, sent: int, since: datetime, t0: float,
                          timeout: float, stall: float = 60.0) -> tuple:
    """Seconds from t0 to the first answer whose total is `sent`, or None (after `timeout`, or
    when the total has not changed for `stall` seconds: events were lost); the last total."""
    total, changed = None, time.perf_counter()
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        while time.perf_counter() - t0 < timeout and time.perf_counter() - changed < stall:
            until = datetime.now(timezone.utc) + timedelta(minutes=1)
            body = {
                "filter": {
                    "occurred": {"since": since.isoformat(), "until": until.isoformat()},
                    "event": {"name": [name]},
                },
                "limit": 1,
            }
            r = await client.post("/events/filter", json=body)
            if r.status_code == 200:
                last, total = total, r.json().get("total")
                if total != last:
                    changed = time.perf_counter()
                if total is not None and total >= sent:
                    return time.perf_counter() - t0, total
            else:
                total = f"HTTP {r.status_code}: {r.text[:200]}"
            await asyncio.sleep(0.05)
    return None, total


async def main() -> None:
    args = sys.argv[1:]
    queryable, timeout, name = False, 300.0, "bench.ingest.sent"
    positional = []
    while args:
        a = args.pop(0)
        if a == "--until-queryable":
            queryable = True
            if args and not args[0].startswith("--"):
                try:
                    timeout = float(args[0])
                    args.pop(0)
                except ValueError:
                    pass
        elif a == "--event":
            name = args.pop(0)
        else:
            positional.append(a)
    api = positional[0].rstrip("/")
    events = int(positional[1]) if len(positional) > 1 else 20000
    sockets = int(positional[2]) if len(positional) > 2 else 4
    ws_url = api.replace("http://", "ws://").replace("https://", "wss://") + "/events/in"
    per = events // sockets
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    t0 = time.perf_counter()
    await asyncio.gather(*(one_socket(ws_url, per, k * per, name) for k in range(sockets)))
    accepted_s = time.perf_counter() - t0
    out = {
        "bench": "events-ingest",
        "events": per * sockets,
        "sockets": sockets,
        "accepted_s": round(accepted_s, 3),
        "events_per_s": round(per * sockets / accepted_s, 1),
    }
    if queryable:
        seconds, total = await until_queryable(api, name, per * sockets, since, t0, timeout)
        out["queryable_s"] = None if seconds is None else round(seconds, 3)
        out["queryable_events_per_s"] = (
            None if seconds is None else round(per * sockets / seconds, 1)
        )
        out["queryable_total"] = total
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
