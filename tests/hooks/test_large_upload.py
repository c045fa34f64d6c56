"""A 1 GiB upload through the hook: byte-identical, and neither process's memory grows with the size.

The emulator runs in its own process and the upload in another, so each peak RSS (VmHWM) is that
process's alone. The figures are printed (``pytest -s``) and asserted against a generous bound: a
client that read the file into memory would grow by a whole GiB.
"""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest
from _python_child import python_json

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

GIB = 1024**3
MIB = 1024**2
#: "A few tens of MiB" (issue 2): far below the 1024 MiB a buffering client or server would need.
MAX_GROWTH_MIB = 48

CLIENT = textwrap.dedent(
    """
    import json, os, resource, sys
    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    hook = BctrlHook(max_retries=0, timeout=300)
    hook.whoami()  # warm up: imports, connection, session
    before = peak_mib()
    staged = hook.upload_file(sys.argv[1], sys.argv[2], runtime_path="big/big.bin")
    print(json.dumps({"before": before, "after": peak_mib(), "id": staged.id, "size": staged.size_bytes}))
    """
)


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_one_gib_upload_is_byte_exact_in_constant_memory(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for index in range(GIB // MIB):
            chunk = index.to_bytes(8, "little") + block[8:]  # every MiB differs
            out.write(chunk)
            digest.update(chunk)

    with BctrlEmulator(api_key="bctrl_big_key", data_dir=tmp_path / "emu", in_process=False) as emu:
        assert emu.pid is not None
        runtime_id = emu.create_runtime()
        emu.stored_files()  # warm the server up before taking its baseline
        server_before = _vm_hwm_mib(emu.pid)
        env = {**os.environ, "AIRFLOW_CONN_BCTRL_DEFAULT": emu.airflow_connection_json()}
        client = python_json(CLIENT, runtime_id, str(source), env=env, timeout=600)
        server_after = _vm_hwm_mib(emu.pid)
        stored = {f["id"]: f for f in emu.stored_files()}

    print(
        f"\n1 GiB upload: client peak RSS {client['before']:.1f} -> {client['after']:.1f} MiB, "
        f"emulator {server_before:.1f} -> {server_after:.1f} MiB"
    )
    assert client["size"] == GIB
    assert stored[client["id"]]["sha256"] == digest.hexdigest()
    assert stored[client["id"]]["sizeBytes"] == GIB
    assert client["after"] - client["before"] < MAX_GROWTH_MIB
    assert server_after - server_before < MAX_GROWTH_MIB
