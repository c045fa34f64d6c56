"""A Python snippet in a fresh interpreter, for what the test process would spoil: imports, parsing, memory.

The snippet prints one JSON document as its last line; the test gets it back, or fails with the end of
the snippet's stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def python_json(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    """Run ``python -c code *args`` with this interpreter; the JSON on its last line of output.

    ``env`` is the child's whole environment (default: this process's). AssertionError with the end of
    its stderr when it exits non-zero; bounded by ``timeout`` seconds.
    """
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"the child exited {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
