"""Deployment PATCHes change schedules by the reference's slug rules: each step of
schedule_patches.py gives the reference server's status, answer and resulting schedules
(reference/schedule-patches.json)."""

import json
from pathlib import Path

import pytest
from conftest import server_root
from schedule_patches import run

REFERENCE = json.loads((Path(__file__).parent / "reference" / "schedule-patches.json").read_text())


@pytest.fixture(scope="module")
def steps():
    return run(server_root())


@pytest.mark.parametrize("name", list(REFERENCE))
def test_step_like_the_reference(steps, name):
    assert steps.get(name) == REFERENCE[name]


def test_serve_again_without_schedules_keeps_a_slugged_schedule(client, token):
    """What `flow.serve(name, schedules=[...])` and a later `serve(name)` send (the deployment
    applied twice by the runner): the slugged schedule stays, and reads back as it was sent."""
    from prefect import flow
    from prefect.schedules import Cron

    @flow(name=f"served-{token}")
    def served():
        return 1

    first = served.to_deployment(
        name="served", schedules=[Cron("0 9 * * *", slug="every-day-at-9am")]
    )
    deployment_id = first.apply()
    again = served.to_deployment(name="served", schedules=[])
    assert again.apply() == deployment_id
    schedules = client.read_deployment(deployment_id).schedules
    assert [s.slug for s in schedules] == ["every-day-at-9am"]
    assert schedules[0].schedule.cron == "0 9 * * *"
    assert schedules[0].schedule.timezone is None, "read back as sent"
