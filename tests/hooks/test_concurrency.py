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
