"""Why the upload body is built the way it is: multipart body strategies on the discarding sink.

All in one process over one pooled connection, 1 GiB by default, strategies alternated, medians:

- ``toolbelt``: ``data=MultipartEncoder(...)`` as it is usually written (http.client pulls small blocks
  through the encoder's internal buffers);
- ``toolbelt-64k``: the same encoder read in 64 KiB pieces by a length-aware iterable;
- ``stream-<N>k``: :class:`~airflow_provider_bctrl._multipart.StreamingMultipartBody` (what the hook
  sends over TLS) with ``N`` KiB ``readinto`` chunks into one reused buffer (the hook uses 1024);

Prints wall and CPU seconds and the ratio to ``stream-1024k``. Information for
``docs/performance-history.md`` (decision 4), not a target. Usage::

    python benchmarks/body_strategies.py [--size 1G] [--rounds 3] [--chunks 64,256,1024,4096]
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    GIB,
    MIB,
    PYTHON,
    REPO_ROOT,
    machine,
    make_file,
    median,
    parse_size,
    print_machine,
    rotated,
    server_process,
    size_label,
    temp_dir,
    warm,
)

sys.path.insert(0, str(REPO_ROOT))

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder

from airflow_provider_bctrl._multipart import StreamingMultipartBody

_SINK_READY = re.compile(r"SINK listening on (?P<url>http://\S+)")


class _PiecesOf:
    """A length-aware iterable that reads a MultipartEncoder in fixed pieces."""

    def __init__(self, encoder: MultipartEncoder, piece: int) -> None:
        self._encoder = encoder
        self._piece = piece

    def __len__(self) -> int:
        return int(self._encoder.len)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._encoder.read(self._piece):
            yield chunk


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _strategies(path: Path, chunks: list[int]) -> dict[str, Callable[[], tuple[Any, str]]]:
    """Each strategy builds a fresh body."""

    def encoder() -> MultipartEncoder:
        return MultipartEncoder(fields=[("file", (path.name, path.open("rb"), "application/octet-stream"))])

    def plain() -> tuple[Any, str]:
        body = encoder()
        return body, body.content_type

    def pieces() -> tuple[Any, str]:
        body = encoder()
        return _PiecesOf(body, 64 * 1024), body.content_type

    def streaming(chunk_size: int) -> Callable[[], tuple[Any, str]]:
        def build() -> tuple[Any, str]:
            body = StreamingMultipartBody(
                fields=[],
                file_field="file",
                path=path,
                filename=path.name,
                content_type="application/octet-stream",
                chunk_size=chunk_size,
            )
            return body, body.content_type

        return build

    found: dict[str, Callable[[], tuple[Any, str]]] = {"toolbelt": plain, "toolbelt-64k": pieces}
    found.update({f"stream-{kib}k": streaming(kib * 1024) for kib in chunks})
    return found


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", default="64,256,1024,4096", help="KiB chunk sizes of the streaming body")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    if not 1 <= args.rounds <= 20 or size > 8 * GIB:
        parser.error("--rounds must be 1..20 and --size at most 8G")
    chunks = [int(part) for part in args.chunks.split(",")]
    print_machine(machine())
    with (
        temp_dir("bctrl-bench-body-") as work,
        server_process([PYTHON, str(BENCH_DIR / "sink.py"), "--port", "0"], _SINK_READY) as (_, ready),
    ):
        url = f"{ready.group('url')}/v1/runtimes/rt_bench/files/upload"
        test_file = make_file(work, size)
        warm(test_file.path)
        strategies = _strategies(test_file.path, chunks)
        session = requests.Session()
        session.trust_env = False
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in strategies}
        for round_index in range(args.rounds):
            for name in rotated(list(strategies), round_index):
                body, content_type = strategies[name]()
                wall, cpu = time.perf_counter(), _cpu()
                response = session.post(url, data=body, headers={"Content-Type": content_type}, timeout=600)
                response.raise_for_status()
                samples[name].append((time.perf_counter() - wall, _cpu() - cpu))
                if response.json()["sizeBytes"] <= size:
                    raise RuntimeError(f"{name} sent a short body")
    reference = median([s[0] for s in samples["stream-1024k"]]) if "stream-1024k" in samples else None
    print(f"\nmultipart body strategies, {size_label(size)}, median of {args.rounds} rounds, one process")
    print(f"{'strategy':<16}{'median s':>10}{'MiB/s':>10}{'CPU s':>8}{'x stream-1024k':>16}")
    for name, runs in samples.items():
        wall = median([s[0] for s in runs])
        ratio = f"{reference / wall:.2f}" if reference else ""
        print(
            f"{name:<16}{wall:10.3f}{size / MIB / wall:10.1f}{median([s[1] for s in runs]):8.3f}{ratio:>16}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
