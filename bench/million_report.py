#!/usr/bin/env python3
"""The markdown report of `million.sh`: one row per route, each server's kept-alive p50 / p95 and
new-connection p50, Orrery PG's speed-up over the reference, and whether the servers answered
the same rows (ids of a list, the number counted, the counts of a history).

    python3 bench/million_report.py TMPDIR RUNS TASKS REV "SERVERS"
"""

import json
import os
import platform
import sys
import time

NAMES = {"ref_pg": "reference PG", "orrery_pg": "Orrery PG", "orrery_sqlite": "Orrery SQLite"}


def read(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cell(line, kind):
    if line is None:
        return "–"
    if line["status"] >= 400:
        return f"{line['status']}"
    k = line[kind]
    if kind == "kept":
        return f"{k['p50']:.1f} / {k['p95']:.1f}"
    return f"{k['p50']:.1f}"


def main():
    tmp, runs, tasks, rev, servers = sys.argv[1:6]
    servers = servers.split()
    data = {s: {d["route"]: d for d in read(f"{tmp}/{s}.jsonl")} for s in servers}
    meta = {d["server"]: d for d in read(f"{tmp}/meta.jsonl")}
    routes = []
    for s in servers:
        for r in data[s]:
            if r not in routes:
                routes.append(r)
    out = [
        f"# A year of history: {int(runs):,} flow runs, {int(runs) * int(tasks):,} task runs — "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"`bash bench/million.sh` (servers: {' '.join(servers)}), Orrery at `{rev}`, "
        f"{os.cpu_count()} cores, {platform.machine()}. Every server on its own database holding "
        "the same rows (same ids), loaded with SQL, background services on. Latencies in ms: "
        "kept-alive p50 / p95, new connection p50; a number alone in a cell is an HTTP status.",
        "",
    ]
    head = ["route"]
    for s in servers:
        head += [f"{NAMES[s]} kept", f"{NAMES[s]} new"]
    if "ref_pg" in servers and "orrery_pg" in servers:
        head.append("ref / Orrery PG (p95 kept)")
    head.append("same answer")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for r in routes:
        row = [r]
        for s in servers:
            line = data[s].get(r)
            row += [cell(line, "kept"), cell(line, "new")]
        ref, ours = data.get("ref_pg", {}).get(r), data.get("orrery_pg", {}).get(r)
        if "ref_pg" in servers and "orrery_pg" in servers:
            if ref and ours and ref["status"] < 400 and ours["status"] < 400:
                row.append(f"{ref['kept']['p95'] / max(ours['kept']['p95'], 0.01):.1f}×")
            else:
                row.append("–")
        answers = {
            s: (d[r].get("rows"), d[r].get("digest"))
            for s, d in data.items()
            if r in d and d[r]["status"] < 400
        }
        if len(answers) < 2:
            row.append("–")
        elif len(set(answers.values())) == 1:
            row.append("yes")
        else:
            row.append("no: " + ", ".join(f"{NAMES[s]} {a[0]}" for s, a in answers.items()))
        out.append("| " + " | ".join(row) + " |")
    out += ["", "| server | load (s) | database size (MB) | RSS after (MB) |", "|---|---|---|---|"]
    for s in servers:
        m = meta.get(s)
        if m:
            out.append(
                f"| {NAMES[s]} | {m['load_s']} | {int(m['size_bytes']) / 1e6:.0f} | "
                f"{int(m['rss_kb']) / 1024:.0f} |"
            )
    print("\n".join(out))


if __name__ == "__main__":
    main()
