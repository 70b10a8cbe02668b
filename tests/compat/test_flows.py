"""The real client runs flows; the tests check what the server recorded."""

import uuid

from conftest import logs_of, run_scenario, task_runs_of, wait_for
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterTags,
    TaskRunFilter,
    TaskRunFilterTags,
)
from prefect.client.schemas.sorting import TaskRunSort


def state_names(states):
    return [s.name for s in sorted(states, key=lambda s: s.timestamp)]


def test_simple_flow_run_lifecycle(client, token):
    run = run_scenario("results", token)
    assert run.state_type == "COMPLETED"

    fr = client.read_flow_run(run.flow_run_id)
    assert fr.state_type.value == "COMPLETED"
    assert fr.state_name == "Completed"
    assert fr.run_count == 1
    assert fr.parameters == {"n": 4}
    assert token in fr.tags
    assert fr.start_time is not None and fr.end_time is not None
    assert fr.end_time >= fr.start_time
    assert fr.total_run_time.total_seconds() >= 0
    assert fr.expected_start_time is not None
    assert fr.parent_task_run_id is None
    assert fr.flow_version  # the client sends a source hash

    flow = client.read_flow(fr.flow_id)
    assert flow.name == "compat-results"
    assert client.read_flow_by_name("compat-results").id == flow.id

    states = client.read_flow_run_states(run.flow_run_id)
    assert [(s.type.value, s.name) for s in sorted(states, key=lambda s: s.timestamp)] == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    assert all(s.state_details.flow_run_id == run.flow_run_id for s in states)
    assert fr.state.id == sorted(states, key=lambda s: s.timestamp)[-1].id


def test_results_returned(client, token):
    run = run_scenario("results", token)
    assert run.result == {
        "payload": {"n": 4, "squares": [0, 1, 4, 9], "label": "payload-4"},
        "total": 14,
    }
    trs = task_runs_of(client, run.flow_run_id, 1)
    assert len(trs) == 1
    assert trs[0].name.startswith("make_payload-")
    assert trs[0].state_type.value == "COMPLETED"


def test_mapped_tasks(client, token):
    run = run_scenario("mapped", token)
    assert run.state_type == "COMPLETED"
    assert run.result == [0, 2, 4, 6]

    trs = task_runs_of(client, run.flow_run_id, 4)
    assert len(trs) == 4
    assert {tr.task_key for tr in trs} == {trs[0].task_key}, "one task, mapped"
    assert len({tr.dynamic_key for tr in trs}) == 4
    assert len({tr.id for tr in trs}) == 4
    for tr in trs:
        assert tr.flow_run_id == run.flow_run_id
        assert tr.name.startswith("double-")
        assert tr.state_type.value == "COMPLETED"
        assert tr.state_name == "Completed"
        assert tr.run_count == 1
        assert tr.start_time is not None and tr.end_time is not None
        assert token in tr.tags
        assert set(tr.task_inputs) == {"x"}

    one = client.read_task_run(trs[0].id)
    assert one.id == trs[0].id and one.state.type.value == "COMPLETED"
    assert one.state.state_details.task_run_id == one.id
    assert one.state.state_details.flow_run_id == run.flow_run_id

    states = client.read_task_run_states(trs[0].id)
    assert state_names(states) == ["Pending", "Running", "Completed"]


def test_retries(client, token):
    run = run_scenario("retries", token)
    assert run.state_type == "COMPLETED"
    assert run.result == "ok after 2 attempts"

    (tr,) = task_runs_of(client, run.flow_run_id, 1)
    assert tr.name.startswith("flaky-")
    assert tr.state_type.value == "COMPLETED"
    assert tr.run_count == 2
    assert tr.empirical_policy.retries == 1

    states = wait_for(
        lambda: client.read_task_run_states(tr.id),
        lambda ss: "Completed" in state_names(ss),
        "the retried task's state history",
    )
    names = state_names(states)
    assert "AwaitingRetry" in names and "Retrying" in names, names
    assert names.index("AwaitingRetry") < names.index("Retrying") < names.index("Completed")
    assert names[0] == "Pending" and names[-1] == "Completed"
    by_name = {s.name: s for s in states}
    assert by_name["AwaitingRetry"].type.value == "SCHEDULED"
    assert by_name["Retrying"].type.value == "RUNNING"

    # The flow itself ran once.
    fr = client.read_flow_run(run.flow_run_id)
    assert fr.run_count == 1 and fr.state_type.value == "COMPLETED"


def test_failing_task_inside_surviving_flow(client, token):
    run = run_scenario("survivor", token)
    assert run.state_type == "COMPLETED"
    assert run.result == {"bad_state": "FAILED", "good": "fine"}

    fr = client.read_flow_run(run.flow_run_id)
    assert fr.state_type.value == "COMPLETED"

    trs = {tr.name.split("-")[0]: tr for tr in task_runs_of(client, run.flow_run_id, 2)}
    assert trs["explode"].state_type.value == "FAILED"
    assert trs["explode"].state_name == "Failed"
    assert "task exploded on purpose" in (trs["explode"].state.message or "")
    assert trs["fine"].state_type.value == "COMPLETED"
    assert state_names(client.read_task_run_states(trs["explode"].id)) == ["Pending", "Running", "Failed"]


def test_failing_flow(client, token):
    run = run_scenario("failing", token)
    assert run.state_type == "FAILED"
    assert "flow failed on purpose" in run.result

    fr = client.read_flow_run(run.flow_run_id)
    assert fr.state_type.value == "FAILED"
    assert fr.state_name == "Failed"
    assert "flow failed on purpose" in (fr.state.message or "")
    assert fr.end_time is not None
    assert state_names(client.read_flow_run_states(run.flow_run_id)) == ["Pending", "Running", "Failed"]

    # The task that ran before the failure completed.
    (tr,) = task_runs_of(client, run.flow_run_id, 1)
    assert tr.state_type.value == "COMPLETED"


def test_subflows(client, token):
    run = run_scenario("subflow", token)
    assert run.state_type == "COMPLETED"
    assert run.result == [3, 5]

    parent = client.read_flow_run(run.flow_run_id)
    assert parent.parent_task_run_id is None

    # The parent records one task run per subflow call.
    parent_trs = task_runs_of(client, parent.id, 2)
    assert len(parent_trs) == 2
    by_id = {tr.id: tr for tr in parent_trs}

    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(any_=list(by_id))
        )
    )
    assert len(children) == 2
    for child in children:
        assert child.parent_task_run_id in by_id
        assert child.state_type.value == "COMPLETED"
        assert token in child.tags
        assert client.read_flow(child.flow_id).name == "compat-child"
        link = by_id[child.parent_task_run_id]
        assert link.flow_run_id == parent.id
        assert link.state_type.value == "COMPLETED"
        assert link.state.state_details.child_flow_run_id == child.id
        # The child's own task ran inside the child flow run.
        (inner,) = task_runs_of(client, child.id, 1)
        assert inner.name.startswith("double-")
    assert sorted(tr.dynamic_key for tr in parent_trs) == ["0", "1"]

    # Filtering flow runs by flow name finds both children and not the parent.
    named = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["compat-child"])),
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[token])),
    )
    assert {c.id for c in named} == {c.id for c in children}


def test_submit_and_futures(client, token):
    run = run_scenario("submit", token)
    assert run.state_type == "COMPLETED"
    assert run.result == 13 + 300

    trs = task_runs_of(client, run.flow_run_id, 3, sort=TaskRunSort.EXPECTED_START_TIME_ASC)
    assert len(trs) == 3
    assert all(tr.state_type.value == "COMPLETED" for tr in trs)
    assert {tr.task_key for tr in trs} == {trs[0].task_key}
    # b = add(a, 10): its task_inputs point at a's task run.
    upstream = [
        tr for tr in trs if any(getattr(i, "input_type", None) == "task_run" for i in tr.task_inputs.get("x", []))
    ]
    assert len(upstream) == 1, [tr.task_inputs for tr in trs]
    b = upstream[0]
    (a_ref,) = b.task_inputs["x"]
    assert a_ref.id in {tr.id for tr in trs} and a_ref.id != b.id


def test_tags_on_flows_and_tasks(client, token):
    run = run_scenario("tags", token)
    assert run.state_type == "COMPLETED"

    flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[token])))
    assert [fr.id for fr in flow_runs] == [run.flow_run_id]
    assert flow_runs[0].tags == [token]

    trs = task_runs_of(client, run.flow_run_id, 2)
    by_name = {tr.name.rsplit("-", 1)[0]: tr for tr in trs}
    assert set(by_name["tagged_task"].tags) == {token, "compat-task-tag", "compat-inner-tag"}
    assert set(by_name["untagged_task"].tags) == {token}

    tagged = client.read_task_runs(
        task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[token, "compat-task-tag"]))
    )
    assert [tr.id for tr in tagged] == [by_name["tagged_task"].id]
    all_of_token = client.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[token])))
    assert {tr.id for tr in all_of_token} == {tr.id for tr in trs}
    none = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[token, "no-such-tag-" + uuid.uuid4().hex]))
    )
    assert none == []


def test_logs_from_flows_and_tasks(client, token):
    run = run_scenario("logs", token)
    assert run.state_type == "COMPLETED"

    (tr,) = task_runs_of(client, run.flow_run_id, 1)
    wanted = {f"flow info {token}", f"flow print {token}", f"task print {token}", f"task warning {token}"}
    logs = logs_of(
        client,
        run.flow_run_id,
        lambda ls: wanted <= {lg.message for lg in ls},
        f"the four log lines of {token}",
    )
    by_msg = {lg.message: lg for lg in logs}
    assert all(lg.flow_run_id == run.flow_run_id for lg in logs)

    assert by_msg[f"flow info {token}"].task_run_id is None
    assert by_msg[f"flow info {token}"].level == 20
    assert by_msg[f"flow print {token}"].task_run_id is None  # log_prints=True on the flow
    assert by_msg[f"flow print {token}"].level == 20
    assert by_msg[f"task print {token}"].task_run_id == tr.id  # inherited log_prints
    assert by_msg[f"task print {token}"].level == 20
    assert by_msg[f"task warning {token}"].task_run_id == tr.id
    assert by_msg[f"task warning {token}"].level == 30
    assert by_msg[f"flow info {token}"].name == "prefect.flow_runs"
    assert by_msg[f"task warning {token}"].name == "prefect.task_runs"

    # The engine's own lines are there too, and read_logs sorts by timestamp ascending.
    assert any(lg.message.startswith("Beginning flow run") for lg in logs)
    stamps = [lg.timestamp for lg in logs]
    assert stamps == sorted(stamps)


def test_async_flow(client, token):
    run = run_scenario("async", token)
    assert run.state_type == "COMPLETED"
    assert run.result == 0 + 1 + 4
    trs = task_runs_of(client, run.flow_run_id, 3)
    assert len(trs) == 3
    assert all(tr.name.startswith("async_square-") and tr.state_type.value == "COMPLETED" for tr in trs)


def test_flow_runs_by_id_filter(client, token):
    run = run_scenario("mapped", token)
    found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.flow_run_id])))
    assert [fr.id for fr in found] == [run.flow_run_id]
