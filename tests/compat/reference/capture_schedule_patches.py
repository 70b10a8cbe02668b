"""Records the reference server's answers to tests/compat/schedule_patches.py:

    $V/bin/python tests/compat/reference/capture_schedule_patches.py http://127.0.0.1:4300 \
        > tests/compat/reference/schedule-patches.json
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schedule_patches import run  # noqa: E402

print(json.dumps(run(sys.argv[1]), indent=1))
