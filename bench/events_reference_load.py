"""Writes the event history of bench/seed_events.rs into the reference server's own database
(`prefect server start`'s `events` and `event_resources` tables, after its migrations), for
bench/events.sh. The history is the same pure function of (i, EVENTS, DAYS, NOW) as there:
same ids, names, resources, related resources, payloads and occurred times, so the two servers
can be asked the same questions and must give the same answers.

    python bench/events_reference_load.py pg EVENTS DAYS NOW | psql -v ON_ERROR_STOP=1 URL
    python bench/events_reference_load.py sqlite EVENTS DAYS NOW PATH/prefect.db

The rows are what the reference's own persister writes (`ReceivedEvent.as_database_row` and
`as_database_resource_rows` in prefect/server/events/schemas/events.py): one `events` row per
event (`related_resource_ids` the ids of its related resources), one `event_resources` row per
involved resource, the primary one included with role '' (each row's `resource` without its
id and role). `received` and `recorded` are NOW. On PostgreSQL the timestamps are `timestamptz`
and the JSON columns `jsonb` (`event_resources.resource` is `json`); on SQLite timestamps are
text `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, JSON as `json.dumps` writes it, UUIDs as 36-char text.

Both are bulk loads: the secondary indexes of the two tables are dropped, the rows streamed in
(PostgreSQL: `COPY ... FROM STDIN`; SQLite: executemany in one transaction), and the indexes
created again from their own definitions. Nothing is held in memory beyond one batch.
"""

import json
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone

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
NOTE = "a benchmark event with a payload of a realistic size, about one hundred and fifty bytes"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def uid(prefix: str, n: int) -> str:
    """uuid(0xPPPP0000_0000_4000_8000_000000000000 | n) as seed_events.rs builds it."""
    return f"{prefix}0000-0000-4000-8000-{n:012x}"


def dumps(v) -> str:
    return json.dumps(v)  # the separators SQLAlchemy's default serializer uses: ", " and ": "


def history(total: int, days: int, now: int):
    """Yields (i, occurred_micros, event name, primary resource, related resources, payload)."""
    span = days * 86_400_000_000
    now_us = now * 1_000_000
    denominator = max(total, 1)
    for i in range(total):
        occurred = now_us - span * i // denominator
        name = NAMES[i % 10]
        r = (i // 10) % 20_000
        if name.startswith("prefect.flow-run."):
            primary = {
                "prefect.resource.id": f"prefect.flow-run.{uid('0f0f', r)}",
                "prefect.resource.name": f"run-{r}",
            }
        elif name.startswith("prefect.task-run."):
            primary = {
                "prefect.resource.id": f"prefect.task-run.{uid('0d0d', i // 3)}",
                "prefect.resource.name": f"task-{i // 3}",
            }
        elif name == "prefect.deployment.updated":
            primary = {
                "prefect.resource.id": f"prefect.deployment.{uid('0c0c', r % 500)}",
                "prefect.resource.name": f"deployment-{r % 500}",
            }
        else:
            primary = {"prefect.resource.id": f"custom.order.{i % 1000}"}
        related = [
            {
                "prefect.resource.id": f"prefect.flow.{uid('0b0b', r % 50)}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": f"flow-{r % 50}",
            },
            {
                "prefect.resource.id": f"prefect.deployment.{uid('0c0c', r % 500)}",
                "prefect.resource.role": "deployment",
                "prefect.resource.name": f"deployment-{r % 500}",
            },
            {
                "prefect.resource.id": f"prefect.work-pool.{uid('0a0a', r % 5)}",
                "prefect.resource.role": "work-pool",
                "prefect.resource.name": f"pool-{r % 5}",
            },
        ]
        yield i, occurred, name, primary, related, {"n": i, "note": NOTE}


def bare(resource: dict) -> dict:
    """A resource without its id and role, as event_resources.resource holds it."""
    return {
        k: v
        for k, v in resource.items()
        if k not in ("prefect.resource.id", "prefect.resource.role")
    }


def stamp(micros: int, pg: bool) -> str:
    d = EPOCH + timedelta(microseconds=micros)
    text = f"{d:%Y-%m-%d %H:%M:%S}.{d.microsecond:06d}"
    return text + "+00" if pg else text


def event_row(e, pg: bool, received: str) -> tuple:
    i, occurred, name, primary, related, payload = e
    return (
        stamp(occurred, pg),
        name,
        primary["prefect.resource.id"],
        dumps(primary),
        dumps([r["prefect.resource.id"] for r in related]),
        dumps(related),
        dumps(payload),
        received,
        received,
        uid("0e0e", i),
    )


def resource_rows(e, pg: bool):
    i, occurred, _, primary, related, _ = e
    at, event_id = stamp(occurred, pg), uid("0e0e", i)
    yield at, primary["prefect.resource.id"], "", dumps(bare(primary)), event_id
    for r in related:
        yield at, r["prefect.resource.id"], r["prefect.resource.role"], dumps(bare(r)), event_id


EVENT_COLUMNS = (
    "occurred, event, resource_id, resource, related_resource_ids, related, payload, "
    "received, recorded, id"
)
RESOURCE_COLUMNS = "occurred, resource_id, resource_role, resource, event_id"


def pg(total: int, days: int, now: int) -> None:
    """SQL and COPY data for psql on stdout."""
    out = sys.stdout
    received = stamp(now * 1_000_000, True)
    out.write(
        """\\set ON_ERROR_STOP 1
SET maintenance_work_mem = '1GB';
SET synchronous_commit = off;
CREATE TEMP TABLE bench_indexes AS
  SELECT indexname, indexdef FROM pg_indexes
  WHERE schemaname = 'public' AND tablename IN ('events', 'event_resources')
    AND indexname NOT LIKE 'pk\\_%';
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT indexname FROM bench_indexes LOOP
    EXECUTE format('DROP INDEX %I', r.indexname);
  END LOOP;
END $$;
"""
    )
    out.write(f"COPY events ({EVENT_COLUMNS}) FROM STDIN;\n")
    lines = []
    for e in history(total, days, now):
        lines.append("\t".join(event_row(e, True, received)))
        if len(lines) >= 10_000:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.write("\n".join(lines) + "\n")
        lines.clear()
    out.write("\\.\n")
    out.write(f"COPY event_resources ({RESOURCE_COLUMNS}) FROM STDIN;\n")
    for e in history(total, days, now):
        lines.extend("\t".join(row) for row in resource_rows(e, True))
        if len(lines) >= 40_000:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.write("\n".join(lines) + "\n")
    out.write("\\.\n")
    out.write(
        """DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT indexdef FROM bench_indexes LOOP
    EXECUTE r.indexdef;
  END LOOP;
END $$;
"""
    )


def sqlite(total: int, days: int, now: int, path: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")  # 256 MiB
    db.execute("PRAGMA temp_store = MEMORY")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('events', 'event_resources')"
    ).fetchall()
    received = stamp(now * 1_000_000, False)
    t0 = time.monotonic()
    db.execute("BEGIN")
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    event_sql = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    resource_sql = f"INSERT INTO event_resources ({RESOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
    events, resources = [], []
    for e in history(total, days, now):
        events.append(event_row(e, False, received))
        resources.extend(resource_rows(e, False))
        if len(events) >= 10_000:
            db.executemany(event_sql, events)
            db.executemany(resource_sql, resources)
            events.clear()
            resources.clear()
            if e[0] % 200_000 == 199_999:
                print(f"events_reference_load: {e[0] + 1}/{total} events, "
                      f"{(e[0] + 1) / (time.monotonic() - t0):.0f}/s", file=sys.stderr)
    if events:
        db.executemany(event_sql, events)
        db.executemany(resource_sql, resources)
    for _, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.close()


def main() -> None:
    kind, total, days, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if kind == "pg":
        pg(total, days, now)
    elif kind == "sqlite":
        sqlite(total, days, now, sys.argv[5])
    else:
        sys.exit(f"unknown target {kind!r}: pg or sqlite")


if __name__ == "__main__":
    main()
