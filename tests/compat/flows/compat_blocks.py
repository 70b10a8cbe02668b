"""Blocks for the compat suite: user-defined block classes (one nesting another, with a plain
pydantic model and secrets), and a small CLI that saves and loads them, and Secrets, in a fresh
interpreter:

    python compat_blocks.py secret-save <name> <value> [overwrite]
    python compat_blocks.py secret-load <name>
    python compat_blocks.py warehouse-save <name> <creds name | ->    ("-": creds inline)
    python compat_blocks.py warehouse-load <name>

The last stdout line is `COMPAT_RESULT <json>`. `prefect block register -f` on this file
registers CompatCreds and CompatWarehouse.
"""

import json
import sys

from pydantic import BaseModel, Field, SecretStr

from prefect.blocks.core import Block
from prefect.blocks.system import Secret


class ConnOptions(BaseModel):
    host: str
    port: int = 5432
    labels: list[str] = Field(default_factory=list)


class CompatCreds(Block):
    """Credentials for the compat warehouse."""

    _block_type_name = "Compat Creds"
    username: str
    password: SecretStr


class CompatWarehouse(Block):
    """A warehouse block nesting a credentials block."""

    _block_type_name = "Compat Warehouse"
    creds: CompatCreds
    options: ConnOptions
    token: SecretStr
    retries: int = 3


def result(value) -> None:
    print("COMPAT_RESULT " + json.dumps(value), flush=True)


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd == "secret-save":
        name, value = argv[1], argv[2]
        overwrite = len(argv) > 3 and argv[3] == "overwrite"
        block_id = Secret(value=value).save(name, overwrite=overwrite)
        result({"id": str(block_id)})
    elif cmd == "secret-load":
        result({"value": Secret.load(argv[1]).get()})
    elif cmd == "warehouse-save":
        name, creds_name = argv[1], argv[2]
        creds = CompatCreds(username="etl", password="pw-123")
        creds_id = None
        if creds_name != "-":
            creds_id = str(creds.save(creds_name, overwrite=True))
        wh = CompatWarehouse(
            creds=creds,
            options=ConnOptions(host="db.internal", port=6543, labels=["a", "b"]),
            token="tok-456",
        )
        result({"id": str(wh.save(name, overwrite=True)), "creds_id": creds_id})
    elif cmd == "warehouse-load":
        wh = CompatWarehouse.load(argv[1])
        result(
            {
                "username": wh.creds.username,
                "password": wh.creds.password.get_secret_value(),
                "host": wh.options.host,
                "port": wh.options.port,
                "labels": wh.options.labels,
                "token": wh.token.get_secret_value(),
                "retries": wh.retries,
            }
        )
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
