"""Turns the JSON files that bench/run.sh collected into a Markdown report and a printed table.

Usage: python report.py RESULTS_DIR OUT.md

RESULTS_DIR holds meta.json and, per server NAME (ref_pg, ref_sqlite, orrery_pg, orrery_sqlite):
NAME.lifecycle.json, NAME.taskflow.json, NAME.tasklag.json, NAME.rss.json (any may be missing);
and per server KIND (ref_pg, orrery_pg, orrery_sqlite) sched_KIND.{setup,watch,meta,cpu}.json (scheduler
bench) and poll_KIND.{setup,due,empty}.json (get_scheduled_flow_runs bench).
"""

import json
import os
import sys

SERVERS = [("ref_pg", "reference PG"), ("orrery_pg", "Orrery PG"), ("orrery_sqlite", "Orrery SQLite")]


def load(d, name):
    path = os.path.join(d, name)
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def get(obj, *path):
    for p in path:
        if obj is None:
            return None
        obj = obj.get(p) if isinstance(obj, dict) else None
    return obj


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 100:
            s = f"{v:,.0f}"
        elif abs(v) >= 10:
            s = f"{v:.1f}"
        else:
            s = f"{v:.2f}"
    else:
        s = f"{v:,}" if isinstance(v, int) else str(v)
    return s + unit


def ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt_ratio(r):
    return "n/a" if r is None else (f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×")


def met(ok):
    return "n/a" if ok is None else ("yes" if ok else "**NO**")


def extra_sections(d):
    """Markdown lines and terminal lines for the scheduler and get_scheduled_flow_runs benches."""
    kinds = [("ref_pg", "reference PG"), ("orrery_pg", "Orrery PG"), ("orrery_sqlite", "Orrery SQLite")]
    sched = {k: {p: load(d, f"sched_{k}.{p}.json") for p in ("setup", "watch", "meta", "cpu")} for k, _ in kinds}
    poll = {k: {p: load(d, f"poll_{k}.{p}.json") for p in ("setup", "due", "empty")} for k, _ in kinds}
    md, text, raw = [], [], []

    def table(rows, header):
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        widths = [max(len(str(x[i])) for x in [header] + rows) for i in range(len(header))]
        t = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
        t += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
        return out, t

    if any(sched[k]["watch"] for k, _ in kinds):
        def cycle_s(k):
            w, m = sched[k]["watch"], sched[k]["meta"]
            if not w or not m or not w.get("runs"):
                return None
            # From the server answering "ready" to the count first reaching 61 runs per deployment
            # (later changes are the next cycle's, once time has moved on).
            t = w.get("reached_s")
            return None if t is None else max(0.0, w["start_epoch"] + t - m["ready_epoch"])

        def writes(k):
            m = sched[k]["meta"]
            b, a = get(m, "writes_before"), get(m, "writes_after")
            if not isinstance(a, dict) or not isinstance(b, dict):
                return None
            return {x: int(a[x]) - int(b[x]) for x in ("ins", "upd", "del")}

        def cpu_s(k):
            c = sched[k]["cpu"]
            return None if not c else c.get("server_s", 0) + c.get("db_s", 0)

        n = get(sched["orrery_pg"]["setup"], "deployments") or get(sched["ref_pg"]["setup"], "deployments") or "?"
        cyc = {k: cycle_s(k) for k, _ in kinds}
        runs = {k: get(sched[k]["watch"], "runs") for k, _ in kinds}
        wr = {k: writes(k) for k, _ in kinds}
        rows = [
            (f"one scheduler cycle, {n} deployments: ready → 61 runs each (s)", *(fmt(cyc[k]) for k, _ in kinds),
             fmt_ratio(ratio(cyc["ref_pg"], cyc["orrery_pg"])), "Orrery < 2 s",
             met(None if cyc["orrery_pg"] is None or cyc["orrery_sqlite"] is None else max(cyc["orrery_pg"], cyc["orrery_sqlite"]) < 2)),
            ("  cycle finished (count reached 61 per deployment)", *(fmt(get(sched[k]["watch"], "reached")) for k, _ in kinds), "", "", ""),
            ("  first run appeared after ready (s)", *(fmt(None if not sched[k]["watch"] or sched[k]["watch"].get("first_run_s") is None or not sched[k]["meta"]
                else sched[k]["watch"]["start_epoch"] + sched[k]["watch"]["first_run_s"] - sched[k]["meta"]["ready_epoch"]) for k, _ in kinds), "", "", ""),
            ("  SCHEDULED runs when the count settled", *(fmt(runs[k]) for k, _ in kinds), "", "", ""),
            ("  rows inserted (PostgreSQL statistics, all tables)", *(fmt(get(wr[k], "ins")) for k, _ in kinds), "", "", ""),
            ("  rows updated (PostgreSQL statistics, all tables)", *(fmt(get(wr[k], "upd")) for k, _ in kinds), "", "", ""),
            ("  CPU: server + its PG backends during the cycle (s)", *(fmt(cpu_s(k)) for k, _ in kinds), "", "", ""),
            ("  deployments created at (deployments/s, setup)", *(fmt(None if not sched[k]["setup"] else sched[k]["setup"]["deployments"] / max(sched[k]["setup"]["elapsed_s"], 1e-9)) for k, _ in kinds), "", "", ""),
        ]
        m, t = table(rows, ("scheduler", *(l for _, l in kinds), "ratio", "target", "met?"))
        md += ["### Scheduler", "",
               f"{n} deployments, each with an interval schedule of 60 s (anchored on a whole minute) and a process",
               "work pool, created with the scheduler off; then the server is restarted with only its scheduler",
               "service on (reference: every other `PREFECT_SERVER_SERVICES_*_ENABLED=false`; Orrery: the other",
               "services' intervals 0) on the same database, and `loadgen sched-watch` polls `POST /flow_runs/count`",
               "(SCHEDULED) every 200 ms until the count has reached 61 per deployment and not moved for 5 s.",
               "Cycle time = from the server answering ready to the count first reaching 61 per deployment",
               "(the first cycle starts at start-up). Rows written: `pg_stat_user_tables` before/after",
               "(until the count settled, so a second cycle of the reference is included).",
               "", *m, ""]
        for k, label in kinds:
            sl = get(sched[k]["meta"], "server_log")
            if sl:
                md.append(f"- {label} log: `{sl}`")
        md.append("")
        text += ["", "scheduler:", *t]
        for k, _ in kinds:
            for p in ("setup", "watch", "meta", "cpu"):
                if sched[k][p] is not None:
                    raw.append(f"sched_{k}.{p}: {json.dumps(sched[k][p])}")

    if any(poll[k]["due"] for k, _ in kinds):
        rows = []
        for case, label in (("due", "100 runs due (10 per queue)"), ("empty", "nothing due (now + 10 s)")):
            for q in ("p50", "p99"):
                vals = {k: get(poll[k][case], "latency_ms", q) for k, _ in kinds}
                rows.append((f"{label}: {q} (ms)", *(fmt(vals[k]) for k, _ in kinds),
                             fmt_ratio(ratio(vals["ref_pg"], vals["orrery_pg"])),
                             "Orrery < 20 ms" if q == "p99" else "",
                             met(None if vals["orrery_pg"] is None or vals["orrery_sqlite"] is None
                                 else max(vals["orrery_pg"], vals["orrery_sqlite"]) < 20) if q == "p99" else ""))
            rows.append((f"  calls (errors; answers of the wrong size)",
                         *(f"{fmt(get(poll[k][case], 'calls'))} ({fmt(get(poll[k][case], 'errors'))}; {fmt(get(poll[k][case], 'unexpected_sizes'))})" for k, _ in kinds), "", "", ""))
        rows.append(("  setup: 10 × POST /deployments/{id}/schedule of 1,000 runs (s)",
                     *(fmt(get(poll[k]["setup"], "elapsed_s")) for k, _ in kinds), "", "", ""))
        m, t = table(rows, ("get_scheduled_flow_runs", *(l for _, l in kinds), "ratio", "target", "met?"))
        md += ["### `POST /work_pools/{pool}/get_scheduled_flow_runs`", "",
               "One process pool with 10 queues and one deployment per queue; `POST /deployments/{id}/schedule`",
               "creates 1,000 runs per deployment (1-second interval, from two hours ahead): 10,000 SCHEDULED runs.",
               "The scheduler is off. One client calls the route back to back (20 calls of warm-up, then",
               "the measured time), with `scheduled_before` only, as a process worker polls.",
               "", *m, ""]
        text += ["", "get_scheduled_flow_runs:", *t]
        for k, _ in kinds:
            for p in ("setup", "due", "empty"):
                if poll[k][p] is not None:
                    raw.append(f"poll_{k}.{p}: {json.dumps(poll[k][p])}")
    return md, text, raw


def main():
    d, out = sys.argv[1], sys.argv[2]
    meta = load(d, "meta.json") or {}
    r = {}
    for key, _ in SERVERS + [("ref_sqlite", "")]:
        r[key] = {
            "lc": load(d, f"{key}.lifecycle.json"),
            "flow": load(d, f"{key}.taskflow.json"),
            "lag": load(d, f"{key}.tasklag.json"),
            "rss": load(d, f"{key}.rss.json"),
            "cpu": load(d, f"{key}.cpu.json"),
            "exit": load(d, f"{key}.clientexit.json"),
        }

    def lc(key, *p):
        return get(r[key]["lc"], *p)

    def lag(key):
        # From the client's exit (all events delivered) to the count reaching N; 0 when the
        # server had them all before the client had finished exiting.
        reached, ex = get(r[key]["lag"], "reached_epoch"), get(r[key]["exit"], "exit_epoch")
        if reached is None or ex is None:
            return None
        return max(0.0, reached - ex)

    def rss(key, which, field="rss_kb"):
        v = get(r[key]["rss"], which, field)
        return None if v is None else v / 1024.0  # kB -> MB

    def cpu_ms(key):
        c, n = r[key]["cpu"], lc(key, "lifecycles_total")
        if not c or not n:
            return None
        return (c.get("server_s", 0) + c.get("db_s", 0)) * 1000.0 / n

    both = lambda f: [f("orrery_pg"), f("orrery_sqlite")]

    def all_lt(vals, limit):
        if any(v is None for v in vals):
            return None
        return all(v < limit for v in vals)

    tp = {k: lc(k, "lifecycles_per_s") for k, _ in SERVERS}
    p99 = {k: lc(k, "set_state_ms", "p99") for k, _ in SERVERS}
    p50 = {k: lc(k, "set_state_ms", "p50") for k, _ in SERVERS}
    p95 = {k: lc(k, "set_state_ms", "p95") for k, _ in SERVERS}
    err = {k: lc(k, "errors") for k, _ in SERVERS}
    lags = {k: lag(k) for k, _ in SERVERS}
    lag_end = {k: get(r[k]["lag"], "lag_from_end_time_s") for k, _ in SERVERS}
    at_end = {k: get(r[k]["lag"], "count_at_end_time") for k, _ in SERVERS}
    flow_s = {k: get(r[k]["flow"], "flow_s") for k, _ in SERVERS}
    idle = {k: rss(k, "idle") for k, _ in SERVERS}
    after = {k: rss(k, "after") for k, _ in SERVERS}
    after_anon = {k: rss(k, "after", "anon_kb") for k, _ in SERVERS}
    cpu = {k: cpu_ms(k) for k, _ in SERVERS}
    lg_cpu = {k: None if not lc(k, "loadgen_cpu_s") or not lc(k, "lifecycles_total")
              else lc(k, "loadgen_cpu_s") * 1000.0 / lc(k, "lifecycles_total") for k, _ in SERVERS}
    srv_cpu = {k: None if cpu[k] is None else get(r[k]["cpu"], "server_s") * 1000.0 / lc(k, "lifecycles_total") for k, _ in SERVERS}

    clients = lc("orrery_pg", "clients") or lc("orrery_sqlite", "clients") or lc("ref_pg", "clients") or "?"
    tasks = meta.get("tasks", 1000)
    inv = lambda a, b: ratio(a, b)  # "ratio" = how many times better Orrery PG is than the reference

    rows = [
        # metric, ref, pg, sqlite, ratio, target, met
        (f"lifecycles/s ({clients} clients)", fmt(tp["ref_pg"]), fmt(tp["orrery_pg"]), fmt(tp["orrery_sqlite"]),
         f"{fmt_ratio(ratio(tp['orrery_pg'], tp['ref_pg']))} / {fmt_ratio(ratio(tp['orrery_sqlite'], tp['ref_pg']))}",
         "PG ≥ 20× ref; SQLite ≥ 500/s",
         met(None if None in (tp["orrery_pg"], tp["ref_pg"], tp["orrery_sqlite"])
             else tp["orrery_pg"] >= 20 * tp["ref_pg"] and tp["orrery_sqlite"] >= 500)),
        ("lifecycle errors (non-2xx + transport)", fmt(err["ref_pg"]), fmt(err["orrery_pg"]), fmt(err["orrery_sqlite"]),
         "", "Orrery 0", met(None if None in both(lambda k: err[k]) else all(e == 0 for e in both(lambda k: err[k])))),
        ("set_state p50 (ms)", fmt(p50["ref_pg"]), fmt(p50["orrery_pg"]), fmt(p50["orrery_sqlite"]),
         fmt_ratio(inv(p50["ref_pg"], p50["orrery_pg"])), "", ""),
        ("set_state p95 (ms)", fmt(p95["ref_pg"]), fmt(p95["orrery_pg"]), fmt(p95["orrery_sqlite"]),
         fmt_ratio(inv(p95["ref_pg"], p95["orrery_pg"])), "", ""),
        ("set_state p99 (ms)", fmt(p99["ref_pg"]), fmt(p99["orrery_pg"]), fmt(p99["orrery_sqlite"]),
         fmt_ratio(inv(p99["ref_pg"], p99["orrery_pg"])), "Orrery < 20 ms", met(all_lt(both(lambda k: p99[k]), 20))),
        ("CPU per lifecycle: server + its PG backends (ms)", fmt(cpu["ref_pg"]), fmt(cpu["orrery_pg"]), fmt(cpu["orrery_sqlite"]),
         fmt_ratio(inv(cpu["ref_pg"], cpu["orrery_pg"])), "", ""),
        ("  of which the server process (ms)", fmt(srv_cpu["ref_pg"]), fmt(srv_cpu["orrery_pg"]), fmt(srv_cpu["orrery_sqlite"]),
         fmt_ratio(inv(srv_cpu["ref_pg"], srv_cpu["orrery_pg"])), "", ""),
        ("  load generator, same run (ms)", fmt(lg_cpu["ref_pg"]), fmt(lg_cpu["orrery_pg"]), fmt(lg_cpu["orrery_sqlite"]), "", "", ""),
        (f"task-run recording lag from flow run end_time, {tasks} tasks (s)", fmt(lag_end["ref_pg"]), fmt(lag_end["orrery_pg"]),
         fmt(lag_end["orrery_sqlite"]), fmt_ratio(inv(lag_end["ref_pg"], lag_end["orrery_pg"])), "Orrery < 1 s",
         met(all_lt(both(lambda k: lag_end[k]), 1.0))),
        ("  task runs recorded by the flow run's end_time", fmt(at_end["ref_pg"]), fmt(at_end["orrery_pg"]),
         fmt(at_end["orrery_sqlite"]), "", "", ""),
        ("  same, from the client process's exit (s)", fmt(lags["ref_pg"]), fmt(lags["orrery_pg"]), fmt(lags["orrery_sqlite"]),
         fmt_ratio(inv(lags["ref_pg"], lags["orrery_pg"])), "Orrery < 1 s", met(all_lt(both(lambda k: lags[k]), 1.0))),
        (f"flow with {tasks} mapped tasks, client wall time (s)", fmt(flow_s["ref_pg"]), fmt(flow_s["orrery_pg"]),
         fmt(flow_s["orrery_sqlite"]), fmt_ratio(inv(flow_s["ref_pg"], flow_s["orrery_pg"])), "", ""),
        ("server RSS idle after start (MB)", fmt(idle["ref_pg"]), fmt(idle["orrery_pg"]), fmt(idle["orrery_sqlite"]),
         fmt_ratio(inv(idle["ref_pg"], idle["orrery_pg"])), "Orrery < 60 MB", met(all_lt(both(lambda k: idle[k]), 60))),
        ("server RSS after the runs (MB)", fmt(after["ref_pg"]), fmt(after["orrery_pg"]), fmt(after["orrery_sqlite"]),
         fmt_ratio(inv(after["ref_pg"], after["orrery_pg"])), "Orrery < 60 MB", met(all_lt(both(lambda k: after[k]), 60))),
        ("  of which anonymous (MB)", fmt(after_anon["ref_pg"]), fmt(after_anon["orrery_pg"]), fmt(after_anon["orrery_sqlite"]),
         "", "", ""),
    ]
    header = ("metric", "reference PG", "Orrery PG", "Orrery SQLite", "ratio", "target", "met?")
    md_table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md_table += ["| " + " | ".join(row) + " |" for row in rows]

    # Plain-text table for the terminal.
    widths = [max(len(str(x[i])) for x in [header] + rows) for i in range(len(header))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]

    ref_sqlite = r["ref_sqlite"]["lc"]
    lines = [
        f"# Orrery benchmarks — {meta.get('date', '?')}",
        "",
        "Produced by `bash bench/run.sh` (see bench/README.md). All servers ran one after another in this one run,",
        "on the same machine, each on a fresh database; absolute numbers are noise, ratios are not.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores; memory {meta.get('mem', '?')}",
        f"- Orrery: {meta.get('orrery_rev', '?')} (release binary `{meta.get('orrery_bin', '?')}`, sha256 {meta.get('orrery_bin_sha256', '?')}…)",
        f"- reference: prefect {meta.get('prefect_version', '?')} (`prefect server start`, 1 worker)",
        f"- PostgreSQL: {meta.get('pg_version', '?')}; Redis: {meta.get('redis_version', '?')}",
        f"- load generator: bench/loadgen (tokio current-thread + reqwest), {clients} clients, "
        f"{meta.get('duration', '?')} measured after {meta.get('warmup', '?')} warm-up; "
        f"servers, load generator and client at niceness {meta.get('nice', '0')}",
        "",
        "## Results",
        "",
        "ratio = how many times better Orrery PG is than the reference on PostgreSQL (throughput: Orrery/ref,",
        "times and memory: ref/Orrery); the lifecycle row also gives Orrery SQLite / reference PG.",
        "",
        "CPU per lifecycle = CPU time used during the lifecycle run by the server's processes and by the",
        "PostgreSQL backends connected to its database, over every lifecycle completed in that run (warm-up",
        "included). It hardly depends on how busy the machine was: 2 cores / (this + the load generator's)",
        "bounds the throughput. PostgreSQL backends that closed during the run are missed (the reference's pool",
        "closes its overflow connections), so the reference's figure is a lower bound.",
        "",
        "Task-run lag: polling (every 50 ms) starts before the flow. 'From end_time' is from the flow run's",
        "end_time as the server recorded it, and includes the time the client still spends sending its queued",
        "events while it exits; 'from exit' starts once the client process has exited, i.e. has sent them all",
        "(0 = all were recorded before it had exited).",
        "",
        *md_table,
        "",
    ]
    if ref_sqlite:
        lines += [
            "Reference on its SQLite default, "
            f"{ref_sqlite.get('clients')} clients: {fmt(ref_sqlite.get('lifecycles_per_s'))} lifecycles/s, "
            f"{fmt(ref_sqlite.get('errors'))} errors ({json.dumps(ref_sqlite.get('error_kinds') or {})}), "
            f"set_state p99 {fmt(get(ref_sqlite, 'set_state_ms', 'p99'))} ms.",
            "",
        ]
    notes = meta.get("notes") or []
    if notes:
        lines += ["## Notes from the run", ""] + [f"- {n}" for n in notes] + [""]
    examples = []
    for key, label in SERVERS + [("ref_sqlite", "reference SQLite")]:
        ex = get(r[key]["lc"], "error_examples")
        if ex:
            examples.append(f"**{label}** ({json.dumps(get(r[key]['lc'], 'error_kinds'))}):")
            examples += ["", "```"] + [json.dumps(e) for e in ex] + ["```", ""]
    if examples:
        lines += ["## Error examples (first few per server)", ""] + examples
    if not any(r[k]["lc"] for k, _ in SERVERS + [("ref_sqlite", "")]):
        # Only the scheduler / poll benches ran: drop the (empty) lifecycle table.
        start = lines.index("## Results") + 2
        end = start + lines[start:].index(md_table[-1]) + 2
        lines = lines[:start] + lines[end:]
        text = []
    xmd, xtext, xraw = extra_sections(d)
    lines += xmd
    text += xtext
    lines += ["## Raw results", "", "```"] + xraw
    for key, _ in SERVERS + [("ref_sqlite", "")]:
        for part in ("lc", "cpu", "flow", "exit", "lag", "rss"):
            if r[key][part] is not None:
                lines.append(f"{key}.{part}: {json.dumps(r[key][part])}")
    lines += ["```", ""]
    with open(out, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(text))
    if ref_sqlite:
        print(f"\nreference SQLite, {ref_sqlite.get('clients')} clients: {fmt(ref_sqlite.get('lifecycles_per_s'))} lifecycles/s, "
              f"{fmt(ref_sqlite.get('errors'))} errors {json.dumps(ref_sqlite.get('error_kinds') or {})}")


if __name__ == "__main__":
    main()
