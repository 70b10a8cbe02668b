#!/usr/bin/env python3
"""The markdown report of `events.sh`: each query's p50 / p99 per server against the issue-16
target, the ingest rate until queryable, the load, and whether every server answered what the
loaded history defines (and the same as the others): a difference is printed as MISMATCH.

    python3 bench/events_report.py TMPDIR EVENTS DAYS NOW REV "SERVERS"
"""

import glob
import json
import os
import platform
import sys
import time
from datetime import datetime

NAMES = {
    "ref_pg": "reference PG",
    "ref_sqlite": "reference SQLite",
    "orrery_pg": "Orrery PG",
    "orrery_sqlite": "Orrery SQLite",
}
QUERIES = [
    ("feed", "feed: newest 50 of 7 days"),
    ("resource", "one flow run's events (7 days)"),
    ("prefix", "event-name prefix `prefect.flow-run.` (7 days)"),
    ("count", "count-by/event, one day"),
]


def read_json(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def when(text):
    """A timestamp as an aware datetime, whatever the server's spelling (Z, +00:00)."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fmt(x, digits=1):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def main():
    tmp, count, days, now, rev, servers = sys.argv[1:7]
    count, days, now = int(count), int(days), int(now)
    servers = servers.split()
    data = {s: read_json(f"{tmp}/{s}.json") for s in servers}
    ingest = {
        s: [d for d in (read_json(p) for p in sorted(glob.glob(f"{tmp}/{s}-ingest*.json"))) if d]
        for s in servers
    }
    meta = {d["server"]: d for d in read_lines(f"{tmp}/meta.jsonl")}
    notes = []
    if os.path.exists(f"{tmp}/notes.txt"):
        with open(f"{tmp}/notes.txt") as f:
            notes = [line.strip() for line in f if line.strip()]
    target = 200 if count >= 20_000_000 else 50
    orrery = [s for s in servers if s.startswith("orrery_")]

    out = [
        f"# Events: {count:,} events over {days} days — {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"`bash bench/events.sh` (servers: {' '.join(servers)}), Orrery at `{rev}`, "
        f"{os.cpu_count()} cores ({cpu_model()}). History: bench/seed_events.rs's (Orrery, "
        "through its storage layer) and bench/events_reference_load.py's (the reference, the same "
        f"events into its own tables), ending at NOW = {now} "
        f"({datetime.utcfromtimestamp(now).isoformat()}Z). One kept-alive httpx client per "
        "server, warm-up calls first; latencies in ms, client side, body read. Both servers keep "
        "30 days of events (retention) in this bench; background services on.",
        "",
    ]
    head = ["query"] + [f"{NAMES[s]} p50 / p99" for s in servers] + ["target (Orrery p99)"]
    if orrery:
        head.append("met?")
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for q, label in QUERIES:
        row = [label]
        met = []
        for s in servers:
            d = (data.get(s) or {}).get("queries", {}).get(q)
            if d is None:
                row.append("–")
                if s in orrery:
                    met.append(f"{NAMES[s]}: no answer")
                continue
            cell = f"{fmt(d['p50_ms'])} / {fmt(d['p99_ms'])}"
            if d["errors"]:
                cell += f" ({d['errors']} errors)"
            if not d["expected_ok"]:
                cell += " **wrong answer**"
            row.append(cell)
            if s in orrery:
                ok = d["p99_ms"] < target and not d["errors"] and d["expected_ok"]
                if not ok:
                    met.append(f"**NO** ({NAMES[s]})")
        row.append(f"< {target} ms")
        if orrery:
            row.append("; ".join(met) if met else "yes")
        out.append("| " + " | ".join(row) + " |")
    calls = []
    for s in servers:
        qs = (data.get(s) or {}).get("queries", {})
        calls.append("/".join(str(qs[q]["calls"]) if q in qs else "–" for q, _ in QUERIES))
    out.append("| calls measured (feed/resource/prefix/count) | " + " | ".join(calls)
               + " |  |" + (" |" if orrery else ""))
    out.append("")

    # Ingest: one run per size sent (events.sh's EVENTS_INGEST), each on the loaded database
    sizes = sorted({d["events"] for runs in ingest.values() for d in runs})
    if sizes:
        out += [
            "| ingest through `/events/in` | " + " | ".join(NAMES[s] for s in servers) + " |",
            "|" + "---|" * (len(servers) + 1),
        ]
    for n in sizes:
        def run(s):
            return next((d for d in ingest.get(s, []) if d["events"] == n), None)

        def ing(s, key, digits=0):
            d = run(s)
            return "–" if not d or d.get(key) is None else f"{d[key]:,.{digits}f}"

        def queryable(s):
            d = run(s)
            if not d:
                return "–"
            if d.get("queryable_s") is not None:
                return f"{d['queryable_events_per_s']:,.0f} ({d['queryable_s']:.2f} s)"
            total = d.get("queryable_total")
            if isinstance(total, int):
                return f"**never**: {total:,} of {n:,} queryable, the rest lost"
            return f"**never** ({total})"

        sockets = next((run(s)["sockets"] for s in servers if run(s)), "–")
        out.append(f"| {n:,} events on {sockets} sockets: accepted (last pong), events/s | "
                   + " | ".join(ing(s, "events_per_s") for s in servers) + " |")
        out.append(f"| {n:,} events: first frame → all queryable (`/events/filter` total), "
                   "events/s (s) | " + " | ".join(queryable(s) for s in servers) + " |")
    if sizes:
        out.append("")
    lost = [s for s in servers if any(isinstance(d.get("queryable_total"), int)
                                      and d.get("queryable_s") is None for d in ingest.get(s, []))]
    if lost:
        text = ("Lost events: " + ", ".join(NAMES[s] for s in lost) + " never answered every "
                "event sent (the total stopped moving).")
        if any(s.startswith("ref_") for s in lost):
            text += (" The reference's in-memory messaging drops what does not fit its "
                     "subscription queue of 10,000 (its log: \"Subscription queue is full, "
                     "dropping message for topic='events'\").")
        out.append(text)
        out.append("")

    # Load
    out += [
        "| load | " + " | ".join(NAMES[s] for s in servers) + " |",
        "|" + "---|" * (len(servers) + 1),
    ]
    def m(s, key):
        return (meta.get(s) or {}).get(key)
    out.append("| load time (s) | " + " | ".join(fmt(m(s, "load_s")) for s in servers) + " |")
    out.append("| load rate (events/s) | " + " | ".join(
        fmt(count / m(s, "load_s"), 0) if m(s, "load_s") else "–" for s in servers) + " |")
    out.append("| then `VACUUM (ANALYZE)` (PG) or `wal_checkpoint(TRUNCATE)` (SQLite) (s) | "
               + " | ".join(fmt(m(s, "analyze_s")) if m(s, "analyze_s") is not None else "–"
                            for s in servers) + " |")
    if any(m(s, "wal_bytes") is not None for s in servers):
        out.append("| SQLite WAL left by the load (MB) | " + " | ".join(
            fmt(m(s, "wal_bytes") / 1e6, 0) if m(s, "wal_bytes") is not None else "–"
            for s in servers) + " |")
    out.append("| database size (MB) | " + " | ".join(
        fmt(m(s, "size_bytes") / 1e6, 0) if m(s, "size_bytes") else "–" for s in servers) + " |")
    out.append("| server RSS after the queries (MB) | " + " | ".join(
        fmt(m(s, "rss_kb") / 1024, 1) if m(s, "rss_kb") else "–" for s in servers) + " |")
    out.append("")
    out.append(
        "Orrery loads through `orrery::storage::events::insert` (the persister's own insert, "
        "5,000 events per transaction, `event_resources` and `event_counts` with them, indexes in "
        "place). The reference is bulk-loaded: its secondary indexes dropped, the rows COPY'd "
        "(PostgreSQL) or inserted in one transaction (SQLite), the indexes built again. Then, "
        "before the server starts, what the database would do by itself minutes after a bulk "
        "load: PostgreSQL databases are `VACUUM (ANALYZE)`d (autovacuum), SQLite WALs copied into "
        "the database file (`PRAGMA wal_checkpoint(TRUNCATE)`; the server's checkpointer would "
        "otherwise be copying it while the queries are timed). Sizes are measured after the runs."
    )
    out.append("")

    # Answers
    out += ["## Answers", ""]
    mismatches = []
    for q, label in QUERIES:
        got = {}
        for s in servers:
            d = (data.get(s) or {}).get("queries", {}).get(q)
            if d is not None:
                got[s] = d
        if not got:
            continue
        if q == "count":
            parts = []
            for s, d in got.items():
                counts = (d["answer"] or {}).get("counts") or {}
                parts.append(f"{NAMES[s]} {sum(counts.values()):,} in {len(counts)} names"
                             + ("" if d["expected_ok"] else " (WRONG)"))
            out.append(f"- {label}: " + "; ".join(parts))
            base = None
            for s, d in got.items():
                a = d["answer"] or {}
                spans = {k: tuple(when(t) for t in v) for k, v in (a.get("spans") or {}).items()}
                key = (a.get("counts"), spans)
                if base is None:
                    base = (s, key)
                elif key[0] != base[1][0]:
                    mismatches.append(f"{label}: {NAMES[s]} counts {key[0]} vs "
                                      f"{NAMES[base[0]]} {base[1][0]}")
                elif key[1] != base[1][1]:
                    diff = [k for k in spans if spans[k] != base[1][1].get(k)]
                    mismatches.append(
                        f"{label}: {NAMES[s]} and {NAMES[base[0]]} differ in start_time/end_time "
                        f"of {diff[:3]}: {[spans[k] for k in diff[:1]]} vs "
                        f"{[base[1][1].get(k) for k in diff[:1]]}")
        else:
            parts = []
            for s, d in got.items():
                a = d["answer"] or {}
                parts.append(f"{NAMES[s]} total {a.get('total')}, {len(a.get('ids') or [])} events"
                             + ("" if d["expected_ok"] else " (WRONG)"))
            out.append(f"- {label}: " + "; ".join(parts))
            base = None
            for s, d in got.items():
                a = d["answer"] or {}
                key = (a.get("total"), a.get("ids"))
                if base is None:
                    base = (s, key)
                elif key != base[1]:
                    what = "total" if key[0] != base[1][0] else "page (ids or their order)"
                    mismatches.append(f"{label}: {NAMES[s]} {what} differs from {NAMES[base[0]]} "
                                      f"({key[0]} vs {base[1][0]})")
        for s, d in got.items():
            if not d["expected_ok"]:
                mismatches.append(f"{label}: {NAMES[s]} did not answer what the history defines")
            if d["errors"]:
                mismatches.append(f"{label}: {NAMES[s]} {d['errors']} errors, first: "
                                  f"{d['first_error']}")
    out.append("")
    if mismatches:
        out += [f"- **MISMATCH** {m}" for m in mismatches]
    else:
        out.append("Every server answered every query with the totals, pages (ids in order) and "
                   "counts the history defines.")
    out.append("")

    # Requests
    first = next((d for d in data.values() if d), None)
    if first:
        out += ["## Requests", ""]
        for q, label in QUERIES:
            r = first["queries"].get(q, {}).get("request")
            if r:
                out.append(f"- {label}: `POST /api{r['path']}` `{json.dumps(r['body'])}`")
        out.append("")
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
