"""The routes Prefect's web UIs call answer as the reference server does: the scenario of
ui_routes.py, normalised, equals the capture of the open-source 3.9.1 server
(reference/ui-routes.json, made by reference/capture_ui_routes.py)."""

import json
from pathlib import Path

import pytest
from conftest import server_root
from ui_routes import scenario

REFERENCE = json.loads((Path(__file__).parent / "reference" / "ui-routes.json").read_text())


@pytest.fixture(scope="module")
def answers():
    return json.loads(json.dumps(scenario(server_root()), sort_keys=True))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_answers_like_the_reference(answers, name):
    assert answers.get(name) == REFERENCE[name]
