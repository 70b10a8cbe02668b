"""Artifacts with the real client: markdown (two versions of one key), table (from a task),
link, image and progress (updated twice) artifacts, read back with the client."""

import json

import conftest
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

EXTRA = conftest.HERE / "flows" / "scenarios_extra.py"


def run_extra(name, token, env=None, timeout=180):
    saved = conftest.SCENARIOS
    conftest.SCENARIOS = EXTRA
    try:
        return conftest.run_scenario(name, token, env, timeout)
    finally:
        conftest.SCENARIOS = saved


def test_artifacts_of_every_kind_are_recorded(client, token):
    run = run_extra("artifacts", token)
    assert run.state_type == "COMPLETED", run.result
    ids = run.result

    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.flow_run_id]))
    )
    by_id = {str(a.id): a for a in arts}
    assert set(by_id) == set(ids.values())
    for a in arts:
        assert a.flow_run_id == run.flow_run_id

    md1, md2 = by_id[ids["md1"]], by_id[ids["md2"]]
    assert (md1.type, md1.data, md1.description) == ("markdown", "# Hello", "first")
    assert (md2.key, md2.data, md2.description) == (f"{token}-md", "# Hello again", "second")

    table = by_id[ids["table"]]
    assert table.type == "table"
    assert table.task_run_id is not None, "created inside a task"
    assert json.loads(table.data) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert table.description == "a table"

    link = by_id[ids["link"]]
    assert link.type == "markdown"
    assert link.data == "[example](https://example.com)"
    assert by_id[ids["image"]].type == "image"
    assert by_id[ids["image"]].data == "https://example.com/a.png"

    progress = by_id[ids["progress"]]
    assert progress.type == "progress"
    assert progress.data == 100.0
    assert progress.description == "done"

    # The latest of each key: the second markdown, and the updated progress.
    latest = client.read_latest_artifacts(
        artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(like_=token))
    )
    by_key = {c.key: c for c in latest}
    assert set(by_key) == {f"{token}-{k}" for k in ("md", "table", "link", "image", "progress")}
    assert str(by_key[f"{token}-md"].latest_id) == ids["md2"]
    assert by_key[f"{token}-md"].data == "# Hello again"
    assert by_key[f"{token}-progress"].data == 100.0

    versions = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"{token}-md"])))
    assert {str(a.id) for a in versions} == {ids["md1"], ids["md2"]}

    via_run = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.flow_run_id])))
    assert {str(a.id) for a in via_run} == set(ids.values())

    # Deleting the latest version makes the previous one the latest again.
    client.delete_artifact(md2.id)
    latest = client.read_latest_artifacts(
        artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[f"{token}-md"]))
    )
    assert [str(c.latest_id) for c in latest] == [ids["md1"]]
    assert latest[0].data == "# Hello"
