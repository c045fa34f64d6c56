"""Many uploads at once, from hooks of their own and from one shared hook, all land byte-exact."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")


def test_32_concurrent_uploads(emu: BctrlEmulator, runtime_id: str, tmp_path: Path) -> None:
    sources = []
    for index in range(32):
        path = tmp_path / f"part-{index:02d}.bin"
        path.write_bytes(os.urandom(256 * 1024 + index))
        sources.append(path)
    shared = BctrlHook(max_retries=0)

    def upload(index: int) -> tuple[str, str]:
        hook = shared if index % 2 else BctrlHook(max_retries=0)
        staged = hook.upload_file(runtime_id, sources[index], runtime_path=f"parts/{sources[index].name}")
        return staged.id, hashlib.sha256(sources[index].read_bytes()).hexdigest()

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(upload, range(32)))

    stored = {f["id"]: f for f in emu.stored_files()}
    assert len({file_id for file_id, _ in results}) == 32
    for (file_id, digest), source in zip(results, sources, strict=True):
        assert stored[file_id]["sha256"] == digest
        assert emu.read_runtime_file(runtime_id, f"parts/{source.name}") == source.read_bytes()
    shared.close()


def test_a_slow_default_space_lookup_does_not_block_other_calls(emu: BctrlEmulator, runtime_id: str) -> None:
    """whoami (for the default space) held up by 2 s must not hold the hook's other callers."""
    emu.write_runtime_file(runtime_id, "out.txt", b"x")
    shared = BctrlHook(max_retries=0, timeout=30)
    shared.whoami()  # connection and session ready: only the default-space lookup is left to do
    emu.add_fault("whoami", delay_seconds=2.0)

    import threading
    import time

    collector = threading.Thread(target=lambda: shared.collect_file(runtime_id, "out.txt"))
    collector.start()
    time.sleep(0.3)  # the collect is now waiting on its whoami
    started = time.monotonic()
    shared.get_file(shared.upload_file(runtime_id, __file__).id)
    other_calls = time.monotonic() - started
    collector.join(timeout=30)
    assert not collector.is_alive()
    assert other_calls < 1.5, f"other calls waited {other_calls:.2f} s behind the whoami"
