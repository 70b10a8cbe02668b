#!/usr/bin/env python3
"""Latency on one kept-alive connection, as the `prefect` client talks (httpx keeps connections
alive and asks for gzip): N requests in a row per route, with answers of realistic size (a page
of 50 flow runs). Prints p50 / p90 / p99 / max and how many took over 30 ms, the signature of a
Nagle / delayed-ACK stall (~40 ms). Works against Orrery or the reference server.

    python3 bench/keepalive.py http://127.0.0.1:4200 [requests-per-route]
"""

import gzip
import http.client
import json
import ssl
import sys
import time
import urllib.parse

HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}


def connect(base):
    u = urllib.parse.urlsplit(base)
    if u.scheme == "https":
        return http.client.HTTPSConnection(
            u.hostname, u.port or 443, context=ssl._create_unverified_context()
        )
    return http.client.HTTPConnection(u.hostname, u.port or 80)


def main():
    base = sys.argv[1].rstrip("/")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    c = connect(base)

    def call(method, path, body=None):
        c.request(
            method,
            "/api" + path,
            body=None if body is None else json.dumps(body),
            headers=HEADERS,
        )
        r = c.getresponse()
        data = r.read()
        if r.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        if r.status >= 400:
            raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
        return data

    flow = json.loads(call("POST", "/flows/", {"name": "keepalive-bench"}))
    for i in range(50):
        call(
            "POST",
            "/flow_runs/",
            {"flow_id": flow["id"], "name": f"run-{i}", "tags": ["bench"],
             "parameters": {"i": i, "text": "x" * 64}},
        )
    routes = [
        ("POST", "/flow_runs/filter", {"limit": 50}),
        ("POST", "/flows/filter", {"limit": 50}),
        ("GET", f"/flows/{flow['id']}", None),
        ("GET", "/health", None),
    ]
    print(f"{'route':32} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'>30ms':>7} {'json bytes':>10}")
    for method, path, body in routes:
        times = []
        size = 0
        for _ in range(n):
            t = time.perf_counter()
            size = len(call(method, path, body))
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
        slow = sum(1 for t in times if t > 30)
        print(
            f"{method + ' ' + path[:26]:32} {pick(0.5):8.2f} {pick(0.9):8.2f} {pick(0.99):8.2f}"
            f" {times[-1]:8.2f} {slow:4}/{n:<3} {size:7}"
        )


if __name__ == "__main__":
    main()
