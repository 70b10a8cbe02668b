"""Blocks with the real client: Secret.save/load, overwrite, a user-defined block nesting another
block, `prefect block register -f`, `prefect block ls` / `block type ls`, include_secrets masking
over HTTP, and the refusal to delete a protected block type. Every save and load runs in a
fresh interpreter (flows/compat_blocks.py); the tests then check what the server recorded."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from conftest import HERE, api_url

BLOCKS = HERE / "flows" / "compat_blocks.py"
MASK = "********"


def run_blocks(*args: str, expect_ok: bool = True) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BLOCKS), *args], capture_output=True, text=True, timeout=180
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COMPAT_RESULT ")]
    if expect_ok and (proc.returncode != 0 or not lines):
        raise AssertionError(
            f"compat_blocks {args} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    if not expect_ok:
        assert proc.returncode != 0, f"compat_blocks {args} unexpectedly succeeded: {proc.stdout}"
        return {"stderr": proc.stderr}
    return json.loads(lines[-1][len("COMPAT_RESULT "):])


def prefect_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="400", NO_COLOR="1", TERM="dumb")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "prefect"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=str(HERE / "flows"),
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def http():
    with httpx.Client(base_url=api_url(), timeout=30) as c:
        yield c


def test_secret_save_and_load(http, client, token):
    name = f"my-secret-{token}"
    saved = run_blocks("secret-save", name, "s3cr3t")
    assert run_blocks("secret-load", name) == {"value": "s3cr3t"}

    # What the server recorded, masked unless secrets are asked for.
    r = http.get(f"/block_types/slug/secret/block_documents/name/{name}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == saved["id"]
    assert doc["data"] == {"value": MASK}
    assert doc["block_type"]["slug"] == "secret" and doc["block_type"]["is_protected"] is True
    assert doc["block_schema"]["version"] == "3.9.1"
    assert doc["is_anonymous"] is False
    for q in ("true", "1", "yes"):
        r = http.get(f"/block_documents/{saved['id']}", params={"include_secrets": q})
        assert r.json()["data"] == {"value": "s3cr3t"}, q
    assert http.get(f"/block_documents/{saved['id']}").json()["data"] == {"value": MASK}
    body = {"block_documents": {"name": {"any_": [name]}}}
    assert http.post("/block_documents/filter", json=body).json()[0]["data"] == {"value": MASK}
    body["include_secrets"] = True
    assert http.post("/block_documents/filter", json=body).json()[0]["data"] == {"value": "s3cr3t"}
    assert http.post("/block_documents/count", json={"block_documents": {"name": {"any_": [name]}}}).json() == 1

    # The client's own reads.
    masked = client.read_block_document_by_name(name, "secret", include_secrets=False)
    assert masked.data == {"value": MASK}
    assert client.read_block_document(saved["id"]).data == {"value": "s3cr3t"}


def test_secret_overwrite(http, token):
    name = f"over-{token}"
    first = run_blocks("secret-save", name, "one")
    refused = run_blocks("secret-save", name, "two", expect_ok=False)
    assert "overwrite=True" in refused["stderr"]
    assert run_blocks("secret-load", name) == {"value": "one"}
    second = run_blocks("secret-save", name, "two", "overwrite")
    assert second["id"] == first["id"]
    assert run_blocks("secret-load", name) == {"value": "two"}
    docs = http.post(
        "/block_documents/filter",
        json={"block_documents": {"name": {"any_": [name]}}, "include_secrets": True},
    ).json()
    assert [(d["id"], d["data"]) for d in docs] == [(first["id"], {"value": "two"})]


def test_user_defined_block_with_a_nested_block(http, token):
    name, creds_name = f"wh-{token}", f"creds-{token}"
    saved = run_blocks("warehouse-save", name, creds_name)
    loaded = run_blocks("warehouse-load", name)
    assert loaded == {
        "username": "etl",
        "password": "pw-123",
        "host": "db.internal",
        "port": 6543,
        "labels": ["a", "b"],
        "token": "tok-456",
        "retries": 3,
    }

    # The saved creds are a document of their own, referenced by the warehouse.
    r = http.get(f"/block_types/slug/compat-warehouse/block_documents/name/{name}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == saved["id"]
    ref = doc["block_document_references"]["creds"]["block_document"]
    assert ref["id"] == saved["creds_id"]
    assert ref["name"] == creds_name
    assert ref["block_type"]["slug"] == "compat-creds"
    assert doc["data"]["creds"] == {"username": "etl", "password": MASK}
    assert doc["data"]["token"] == MASK
    assert doc["data"]["options"] == {"host": "db.internal", "port": 6543, "labels": ["a", "b"]}
    full = http.get(f"/block_documents/{saved['id']}", params={"include_secrets": "true"}).json()
    assert full["data"]["creds"]["password"] == "pw-123" and full["data"]["token"] == "tok-456"

    # The schema nests the creds schema by checksum; both types were registered by the client.
    fields = doc["block_schema"]["fields"]
    creds_ref = fields["block_schema_references"]["creds"]
    assert creds_ref["block_type_slug"] == "compat-creds"
    creds_schema = http.get(f"/block_schemas/checksum/{creds_ref['block_schema_checksum']}").json()
    assert creds_schema["block_type"]["slug"] == "compat-creds"
    assert "CompatCreds" in fields["definitions"] and "ConnOptions" in fields["definitions"]
    assert set(fields["secret_fields"]) >= {"token", "creds.password"}

    # Saved again with the creds inline (not saved on their own): no reference, secrets masked.
    inline = run_blocks("warehouse-save", f"wh-inline-{token}", "-")
    doc = http.get(f"/block_documents/{inline['id']}").json()
    assert doc["block_document_references"] == {}
    assert doc["data"]["creds"]["password"] == MASK
    assert run_blocks("warehouse-load", f"wh-inline-{token}")["password"] == "pw-123"


def test_block_register_and_cli_listings(http, token):
    out = prefect_cli("block", "register", "-f", "compat_blocks.py").stdout
    assert "Compat Warehouse" in out or "compat-warehouse" in out, out
    for slug in ("compat-creds", "compat-warehouse"):
        r = http.get(f"/block_types/slug/{slug}")
        assert r.status_code == 200, r.text
        block_type = r.json()
        assert block_type["slug"] == slug and block_type["is_protected"] is False, block_type
        # Registering also stored the type's schema.
        schemas = http.post(
            "/block_schemas/filter", json={"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}}
        ).json()
        assert schemas and {s["block_type"]["slug"] for s in schemas} == {slug}, schemas

    types = prefect_cli("block", "type", "ls").stdout
    assert "compat-warehouse" in types and "secret" in types, types

    name = f"listed-{token}"
    run_blocks("secret-save", name, "v")
    listing = prefect_cli("block", "ls").stdout
    assert name in listing, listing
    as_json = json.loads(prefect_cli("block", "ls", "--output", "json").stdout)
    # The CLI reads with include_secrets=True (the client's default), so the value is there.
    mine = [b for b in as_json if b["name"] == name]
    assert [(b["block_type"]["slug"], b["data"]) for b in mine] == [("secret", {"value": "v"})]


def test_protected_block_types_refuse_deletion(http, client):
    from prefect.exceptions import ProtectedBlockError

    secret = client.read_block_type_by_slug("secret")
    assert secret.is_protected
    with pytest.raises(ProtectedBlockError):
        client.delete_block_type(secret.id)
    r = http.delete(f"/block_types/{secret.id}")
    assert (r.status_code, r.json()) == (403, {"detail": "protected block types cannot be deleted."})
    r = http.get("/block_types/slug/secret")
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["is_protected"]) == (str(secret.id), True), "the refused delete kept the type"
    caps = http.get("/block_capabilities/").json()
    assert {"read-path", "write-path", "notify"} <= set(caps)
