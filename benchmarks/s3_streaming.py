"""Peak memory of an upload from S3 and a download to S3, at two sizes (run with .venv-celery).

The hook's upload streams an ``s3://`` source into BCTRL and its download streams a stored file into
``s3://``; neither keeps a local copy. This measures what each costs in memory: for every size, a fresh
Python process runs one upload (S3 -> emulator) or one download (emulator -> S3) through ``BctrlHook``
and reports its peak RSS (``ru_maxrss``). The object store is moto's server and the API the emulator,
both in processes of their own on loopback (``scripts/celery_stack.py`` starts them the same way).

Usage: ``.venv-celery/bin/python benchmarks/s3_streaming.py [--sizes 16,256,1024]`` (MiB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from celery_stack import BUCKET, S3_CONN_ID, Stack, start_s3, stop

CHILD = r"""
import json, os, sys, time
from airflow.sdk import ObjectStoragePath
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

mode, target, extra = sys.argv[1], sys.argv[2], sys.argv[3]
hook = BctrlHook()
started = time.perf_counter()
if mode == "upload":
    staged = hook.upload_file(extra, ObjectStoragePath(target, conn_id=os.environ["S3_CONN"]))
    result = staged.id
else:
    result = hook.download_file(extra, ObjectStoragePath(target, conn_id=os.environ["S3_CONN"]))
seconds = time.perf_counter() - started
# VmHWM is this address space's own peak (ru_maxrss may carry the forking parent's over exec).
hwm_kib = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
print(json.dumps({"result": str(result), "seconds": seconds, "peak_rss_mib": hwm_kib / 1024}))
"""


def _child(mode: str, target: str, extra: str, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, target, extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    """Upload from and download to S3 at each size in fresh processes; print peak RSS per run."""
    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="16,256,1024", help="file sizes in MiB, comma-separated")
    parser.add_argument(
        "--download-max",
        type=int,
        default=256,
        help="download only sizes up to this many MiB (moto 5.2.5 answered 500 to the multipart copy "
        "that s3fs makes for the atomic rename of a 1 GiB object)",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bctrl-s3-bench-"))
    (root / "logs").mkdir()
    stack = Stack(root=root)
    try:
        start_s3(stack)
        stack.emulator = BctrlEmulator(api_key="bctrl_bench_s3", data_dir=root / "emulator", in_process=False)
        stack.emulator.start()
        runtime_id = stack.emulator.create_runtime()
        connection = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": stack.s3_url, "region_name": "us-east-1"},
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update(
            AIRFLOW_HOME=str(root / "airflow-home"),
            AIRFLOW_CONN_BCTRL_DEFAULT=stack.emulator.airflow_connection_json(),
            **{f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(connection)},
            S3_CONN=S3_CONN_ID,
        )
        client = stack.s3_client()
        print("| size | direction | seconds | peak RSS MiB |\n| --- | --- | --- | --- |")
        for size_mib in (int(s) for s in args.sizes.split(",")):
            key = f"bench/input-{size_mib}.bin"
            with tempfile.TemporaryFile() as handle:  # made locally once, outside the measured process
                chunk = os.urandom(1 << 20)
                for _ in range(size_mib):
                    handle.write(chunk)
                handle.seek(0)
                client.upload_fileobj(handle, BUCKET, key)
            up = _child("upload", f"s3://{BUCKET}/{key}", runtime_id, env)
            print(f"| {size_mib} MiB | upload S3 -> BCTRL | {up['seconds']:.2f} | {up['peak_rss_mib']:.0f} |")
            if size_mib > args.download_max:
                client.delete_object(Bucket=BUCKET, Key=key)
                continue
            down = _child("download", f"s3://{BUCKET}/bench/output-{size_mib}.bin", str(up["result"]), env)
            print(
                f"| {size_mib} MiB | download BCTRL -> S3 | {down['seconds']:.2f} | {down['peak_rss_mib']:.0f} |"
            )
            head = client.head_object(Bucket=BUCKET, Key=f"bench/output-{size_mib}.bin")
            assert head["ContentLength"] == size_mib << 20, head["ContentLength"]
            for name in (key, f"bench/output-{size_mib}.bin"):
                client.delete_object(Bucket=BUCKET, Key=name)
    finally:
        stop(stack)
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
