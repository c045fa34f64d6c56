"""Small helpers shared by the end-to-end tests (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a local file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class DagRunResult:
    """What one ``dag.test()`` run left behind: its state, task states and every XCom."""

    run_id: str
    state: str
    task_states: dict[tuple[str, int], str]
    xcoms: dict[tuple[str, int, str], Any] = field(repr=False)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """One XCom value; ``KeyError`` naming what exists when it was never pushed."""
        try:
            return self.xcoms[(task_id, map_index, key)]
        except KeyError:
            pushed = sorted(k for k in self.xcoms if k[0] == task_id)
            raise KeyError(f"no XCom {key!r} for {task_id}[{map_index}]; pushed: {pushed}") from None

    def keys(self, task_id: str, map_index: int = -1) -> set[str]:
        """The XCom keys a task instance pushed."""
        return {k for (t, m, k) in self.xcoms if t == task_id and m == map_index}

    def map_indexes(self, task_id: str) -> list[int]:
        """The map indexes a (mapped) task ran with, sorted."""
        return sorted({m for (t, m) in self.task_states if t == task_id})
