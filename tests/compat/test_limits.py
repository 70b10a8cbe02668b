"""Concurrency limits with the real client: a global (v2) limit of 2 held by mapped tasks with
`concurrency(...)`, a tag (v1) limit of 1 on `@task(tags=[...])`, and `rate_limit(...)`. Each
task records when it held its slot; the tests prove the limits held and were released."""

import json

import conftest
import httpx
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

EXTRA = conftest.HERE / "flows" / "scenarios_extra.py"


def run_extra(name, token, env=None, timeout=180):
    saved = conftest.SCENARIOS
    conftest.SCENARIOS = EXTRA
    try:
        return conftest.run_scenario(name, token, env, timeout)
    finally:
        conftest.SCENARIOS = saved


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def max_overlap(entries):
    """The most intervals [start, end) open at one instant."""
    points = sorted([(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries])
    open_now = peak = 0
    for _, delta in points:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def test_global_limit_of_two_holds_across_mapped_tasks(client, token, tmp_path):
    name = f"{token}-gcl"
    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=2))
    log = tmp_path / "holders.jsonl"
    run = run_extra("global_concurrency", token, env={"COMPAT_LIMIT_NAME": name, "COMPAT_LOG": str(log)})
    assert run.state_type == "COMPLETED", run.result
    assert sorted(run.result) == [0, 1, 2, 3, 4, 5]
    entries = read_log(log)
    assert sorted(e["i"] for e in entries) == [0, 1, 2, 3, 4, 5]
    assert max_overlap(entries) == 2, entries
    limit = client.read_global_concurrency_limit_by_name(name)
    assert limit.active_slots == 0
    assert limit.limit == 2


def test_tag_limit_of_one_serialises_tagged_tasks(client, token, tmp_path):
    tag = f"{token}-db"
    client.create_concurrency_limit(tag=tag, concurrency_limit=1)
    log = tmp_path / "tagged.jsonl"
    run = run_extra("tag_concurrency", token, env={"COMPAT_TAG": tag, "COMPAT_LOG": str(log)})
    assert run.state_type == "COMPLETED", run.result
    entries = read_log(log)
    assert sorted(e["i"] for e in entries) == [0, 1, 2]
    assert max_overlap(entries) == 1, entries
    # While a task ran, the v1 limit listed exactly that task run as its holder.
    for e in entries:
        assert e["holders"] == [e["task_run_id"]], e
    limit = client.read_concurrency_limit_by_tag(tag)
    assert limit.active_slots == []
    assert limit.concurrency_limit == 1
    v2 = client.read_global_concurrency_limit_by_name(f"tag:{tag}")
    assert v2.active_slots == 0


def test_rate_limit_spaces_out_acquisitions(client, token):
    name = f"{token}-rate"
    client.create_global_concurrency_limit(
        GlobalConcurrencyLimitCreate(name=name, limit=1, slot_decay_per_second=2.0)
    )
    run = run_extra("rate_limit", token, env={"COMPAT_LIMIT_NAME": name})
    assert run.state_type == "COMPLETED", run.result
    stamps = run.result
    assert len(stamps) == 4
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g >= 0.4 for g in gaps), gaps
    limit = client.read_global_concurrency_limit_by_name(name)
    assert limit.slot_decay_per_second == 2.0


def test_v1_limit_routes_answer_like_prefect(token):
    url = conftest.api_url()
    tag = f"{token}-v1"
    r = httpx.post(f"{url}/concurrency_limits/", json={"tag": tag, "concurrency_limit": 1})
    assert r.status_code == 201
    r = httpx.post(f"{url}/concurrency_limits/", json={"tag": tag, "concurrency_limit": 2})
    assert r.status_code == 200 and r.json()["concurrency_limit"] == 2
    run_a, run_b, run_c = (f"{i}1111111-1111-4111-8111-111111111111" for i in (1, 2, 3))
    for run in (run_a, run_b):
        r = httpx.post(f"{url}/concurrency_limits/increment", json={"names": [tag], "task_run_id": run})
        assert r.status_code == 200 and r.json()[0]["name"] == tag
    r = httpx.post(f"{url}/concurrency_limits/increment", json={"names": [tag], "task_run_id": run_c})
    assert r.status_code == 423
    assert r.json()["detail"] == f"Concurrency limit for the {tag} tag has been reached"
    assert sorted(httpx.get(f"{url}/concurrency_limits/tag/{tag}").json()["active_slots"]) == [run_a, run_b]
    r = httpx.post(f"{url}/concurrency_limits/decrement", json={"names": [tag], "task_run_id": run_a})
    assert r.status_code == 200
    assert httpx.get(f"{url}/concurrency_limits/tag/{tag}").json()["active_slots"] == [run_b]
    r = httpx.post(f"{url}/concurrency_limits/tag/{tag}/reset", json={"slot_override": [run_c]})
    assert r.status_code == 200
    assert httpx.get(f"{url}/concurrency_limits/tag/{tag}").json()["active_slots"] == [run_c]
    r = httpx.delete(f"{url}/concurrency_limits/tag/{tag}")
    assert r.status_code == 200
    assert httpx.get(f"{url}/concurrency_limits/tag/{tag}").status_code == 404
