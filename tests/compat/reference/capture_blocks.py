"""Captures the block types and block schemas a fresh reference server registers at start.

Usage (against a *fresh* `prefect server start`, nothing else registered):

    python tests/compat/reference/capture_blocks.py http://127.0.0.1:4300/api src/storage/blocks_system.json

Writes {"prefect_version", "block_types": [...], "block_schemas": [...]}: block types without
ids and timestamps, ordered by name; block schemas as the server returns them (fields with
`block_schema_references` and `definitions` reconstructed), ordered by creation, with
`block_type_slug` instead of ids. Orrery embeds the file and registers exactly these rows in
every workspace.
"""

import json
import sys

import httpx


def main(api: str, out: str) -> None:
    api = api.rstrip("/")
    with httpx.Client(timeout=30) as c:
        version = c.get(f"{api}/admin/version").json()
        types = c.post(f"{api}/block_types/filter", json={}).json()
        schemas = []
        offset = 0
        while True:
            page = c.post(f"{api}/block_schemas/filter", json={"offset": offset, "limit": 200}).json()
            schemas.extend(page)
            if len(page) < 200:
                break
            offset += 200
    type_keys = ["name", "slug", "logo_url", "documentation_url", "description", "code_example", "is_protected"]
    slug_of = {t["id"]: t["slug"] for t in types}
    schemas.sort(key=lambda s: s["created"])
    data = {
        "prefect_version": version,
        "block_types": [{k: t[k] for k in type_keys} for t in types],
        "block_schemas": [
            {
                "block_type_slug": slug_of[s["block_type_id"]],
                "checksum": s["checksum"],
                "version": s["version"],
                "capabilities": s["capabilities"],
                "fields": s["fields"],
            }
            for s in schemas
        ],
    }
    with open(out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"{len(data['block_types'])} block types, {len(data['block_schemas'])} block schemas -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
