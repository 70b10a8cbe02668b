"""Event ingest rate, as clients send events: SOCKETS websockets on `/events/in` (the `prefect`
subprotocol, `auth` first), each sending its share of EVENTS events (~400 bytes each) one per text
frame as fast as it can, then a ping; the pong means the server has accepted every earlier frame
(the client uses pings as delivery checkpoints, and Orrery answers one only after the frames
before it are durable). Reports events/s from the first frame to the last pong.

    python bench/events_ingest.py http://127.0.0.1:4200/api [EVENTS] [SOCKETS]

Prints one JSON line. Run it against two binaries minutes apart (see bench/README.md).
"""

import asyncio
import json
import sys
import time
import uuid
from datetime import datetime, timezone

import websockets


def event(n: int) -> str:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "occurred": datetime.now(timezone.utc).isoformat(),
            "event": "bench.ingest.sent",
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


async def one_socket(url: str, count: int, start: int) -> None:
    async with websockets.connect(url, subprotocols=["prefect"], max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": None}))
        reply = json.loads(await ws.recv())
        assert reply.get("type") == "auth_success", reply
        for i in range(count):
            await ws.send(event(start + i))
        pong = await ws.ping()
        await pong


async def main() -> None:
    api = sys.argv[1].rstrip("/")
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    sockets = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    ws_url = api.replace("http://", "ws://").replace("https://", "wss://") + "/events/in"
    per = events // sockets
    t0 = time.perf_counter()
    await asyncio.gather(*(one_socket(ws_url, per, k * per) for k in range(sockets)))
    accepted_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "bench": "events-ingest",
                "events": per * sockets,
                "sockets": sockets,
                "accepted_s": round(accepted_s, 3),
                "events_per_s": round(per * sockets / accepted_s, 1),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
