"""Reading runs back with the client's filters and sorts."""

from conftest import run_scenario, task_runs_of
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort, LogSort, TaskRunSort


def test_filters_and_sorts(client, token):
    # Three runs, created in this order: <token>-a (completed), <token>-c (failed), <token>-b (completed).
    run = run_scenario("named", token)
    ids = run.result
    mine = FlowRunFilterTags(all_=[token])

    def names(**kw):
        return [fr.name for fr in client.read_flow_runs(**kw)]

    # name like_ (case-insensitive substring) + NAME_ASC / NAME_DESC
    like = FlowRunFilter(name=FlowRunFilterName(like_=token.upper()))
    assert names(flow_run_filter=like, sort=FlowRunSort.NAME_ASC) == [f"{token}-a", f"{token}-b", f"{token}-c"]
    assert names(flow_run_filter=like, sort=FlowRunSort.NAME_DESC) == [f"{token}-c", f"{token}-b", f"{token}-a"]
    # name any_
    exact = FlowRunFilter(name=FlowRunFilterName(any_=[f"{token}-b", f"{token}-c"]))
    assert names(flow_run_filter=exact, sort=FlowRunSort.NAME_ASC) == [f"{token}-b", f"{token}-c"]

    # tags + EXPECTED_START_TIME_DESC / _ASC follow creation order
    tagged = FlowRunFilter(tags=mine)
    assert names(flow_run_filter=tagged, sort=FlowRunSort.EXPECTED_START_TIME_DESC) == [
        f"{token}-b", f"{token}-c", f"{token}-a"]
    assert names(flow_run_filter=tagged, sort=FlowRunSort.EXPECTED_START_TIME_ASC) == [
        f"{token}-a", f"{token}-c", f"{token}-b"]

    # state type filter
    failed = FlowRunFilter(tags=mine, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED])))
    assert names(flow_run_filter=failed) == [f"{token}-c"]
    completed = FlowRunFilter(
        tags=mine, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])))
    assert names(flow_run_filter=completed, sort=FlowRunSort.NAME_ASC) == [f"{token}-a", f"{token}-b"]
    not_failed = FlowRunFilter(
        tags=mine, state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.FAILED])))
    assert names(flow_run_filter=not_failed, sort=FlowRunSort.NAME_DESC) == [f"{token}-b", f"{token}-a"]
    # state name filter
    by_state_name = FlowRunFilter(tags=mine, state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Failed"])))
    assert names(flow_run_filter=by_state_name) == [f"{token}-c"]

    # limit / offset with a stable sort
    assert names(flow_run_filter=tagged, sort=FlowRunSort.NAME_ASC, limit=2) == [f"{token}-a", f"{token}-b"]
    assert names(flow_run_filter=tagged, sort=FlowRunSort.NAME_ASC, limit=2, offset=2) == [f"{token}-c"]

    # count agrees
    assert client.count_flow_runs(flow_run_filter=tagged) == 3

    # ids map to names
    for suffix, fid in ids.items():
        assert client.read_flow_run(fid).name == f"{token}-{suffix}"


def test_task_run_sorts_and_filters(client, token):
    run = run_scenario("mapped", token)
    trs = task_runs_of(client, run.flow_run_id, 4)

    asc = client.read_task_runs(
        task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[token])),
        sort=TaskRunSort.EXPECTED_START_TIME_ASC,
    )
    desc = client.read_task_runs(
        task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[token])),
        sort=TaskRunSort.EXPECTED_START_TIME_DESC,
    )
    assert {t.id for t in asc} == {t.id for t in trs}
    assert [t.expected_start_time for t in asc] == sorted(t.expected_start_time for t in asc)
    assert [t.id for t in desc] == [t.id for t in reversed(asc)] or [t.expected_start_time for t in desc] == sorted(
        (t.expected_start_time for t in desc), reverse=True)

    by_name = client.read_task_runs(
        task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[token])), sort=TaskRunSort.NAME_ASC)
    assert [t.name for t in by_name] == sorted(t.name for t in trs)

    # Filtering task runs through their flow run's tags.
    via_flow = client.read_task_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[token])))
    assert {t.id for t in via_flow} == {t.id for t in trs}

    # Filtering flow runs through their task runs.
    frs = client.read_flow_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[token])))
    assert [fr.id for fr in frs] == [run.flow_run_id]


def test_log_sort_desc(client, token):
    run = run_scenario("logs", token)
    lf = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.flow_run_id]))
    from conftest import logs_of

    logs_of(client, run.flow_run_id, lambda ls: any(f"task warning {token}" == lg.message for lg in ls), "logs")
    desc = client.read_logs(log_filter=lf, sort=LogSort.TIMESTAMP_DESC)
    stamps = [lg.timestamp for lg in desc]
    assert stamps == sorted(stamps, reverse=True)
    assert len(client.read_logs(log_filter=lf, limit=2)) == 2
