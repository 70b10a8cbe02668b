"""The client pointed at Orrery's Cloud-style prefix for its default account and workspace.

Only Orrery serves /api/accounts/{account}/workspaces/{workspace}; the reference Prefect server
does not, so deselect this module there (`-k 'not workspace_prefix'`).
"""

from conftest import DEFAULT_ACCOUNT, DEFAULT_WORKSPACE, run_scenario, server_root, task_runs_of
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags


def prefixed_api_url() -> str:
    return f"{server_root()}/api/accounts/{DEFAULT_ACCOUNT}/workspaces/{DEFAULT_WORKSPACE}"


def test_workspace_prefix_flow_run(client, token):
    url = prefixed_api_url()
    run = run_scenario("mapped", token, env={"PREFECT_API_URL": url})
    assert run.state_type == "COMPLETED"
    assert run.result == [0, 2, 4, 6]

    with SyncPrefectClient(url) as prefixed:
        fr = prefixed.read_flow_run(run.flow_run_id)
        assert fr.state_type.value == "COMPLETED"
        assert token in fr.tags
        trs = task_runs_of(prefixed, run.flow_run_id, 4)
        assert len(trs) == 4 and all(tr.state_type.value == "COMPLETED" for tr in trs)
        found = prefixed.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[token])))
        assert [f.id for f in found] == [run.flow_run_id]

    # The default workspace is also what the plain /api serves.
    assert client.read_flow_run(run.flow_run_id).id == run.flow_run_id
    assert len(task_runs_of(client, run.flow_run_id, 4)) == 4
