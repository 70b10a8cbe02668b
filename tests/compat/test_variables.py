"""Variables with the real client: Variable.set/get/unset inside a flow (overwrite, refusal
without overwrite, default on missing), then what the server recorded."""

import conftest
import httpx
import pytest
from prefect.client.schemas.actions import VariableCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.variables import Variable

EXTRA = conftest.HERE / "flows" / "scenarios_extra.py"


def run_extra(name, token, env=None, timeout=180):
    saved = conftest.SCENARIOS
    conftest.SCENARIOS = EXTRA
    try:
        return conftest.run_scenario(name, token, env, timeout)
    finally:
        conftest.SCENARIOS = saved


def test_variables_set_get_overwrite_and_default(client, token):
    run = run_extra("variables", token)
    assert run.state_type == "COMPLETED", run.result
    assert run.result == {
        "missing": "fallback",
        "first": {"x": [1, 2]},
        "refused": True,
        "second": [3, "three"],
        "gone": None,
    }
    var = client.read_variable_by_name(f"{token}-var")
    assert var is not None
    assert var.value == [3, "three"]
    assert var.name == f"{token}-var"
    assert client.read_variable_by_name(f"{token}-gone") is None
    assert client.read_variable_by_name(f"{token}-missing") is None


def test_variable_values_of_every_json_type(client, token):
    values = {"s": "text", "i": 7, "f": 2.5, "b": False, "l": [1, {"a": None}], "d": {"k": [True]}}
    for suffix, value in values.items():
        Variable.set(f"{token}-{suffix}", value)
    for suffix, value in values.items():
        assert Variable.get(f"{token}-{suffix}") == value
        assert client.read_variable_by_name(f"{token}-{suffix}").value == value
    with pytest.raises(ObjectAlreadyExists):
        client.create_variable(VariableCreate(name=f"{token}-s", value="again"))
    names = {v.name for v in client.read_variables() if v.name.startswith(token)}
    assert names == {f"{token}-{s}" for s in values}


def test_variable_rules_are_enforced_by_the_server(token):
    url = conftest.api_url()
    r = httpx.post(f"{url}/variables/", json={"name": "Not Valid", "value": 1})
    assert r.status_code == 422
    assert r.json()["exception_detail"][0]["loc"] == ["body", "name"]
    r = httpx.post(f"{url}/variables/", json={"name": f"{token}-big", "value": "x" * 5000})
    assert r.status_code == 422
    assert "less than 5000 characters" in r.json()["exception_detail"][0]["msg"]
    r = httpx.get(f"{url}/variables/name/{token}-nope")
    assert r.status_code == 404
    assert r.json() == {"detail": "Variable not found."}
