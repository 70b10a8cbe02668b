"""Captures the reference server's answers to the UI routes scenario (tests/compat/ui_routes.py)
as JSON: run it with the compat venv against a fresh open-source server.

    $V/bin/python tests/compat/reference/capture_ui_routes.py http://127.0.0.1:4300 \
        > tests/compat/reference/ui-routes.json
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ui_routes import scenario  # noqa: E402

print(json.dumps(scenario(sys.argv[1]), indent=1, sort_keys=True))
