"""The shell commands in the README, the docs and the example DAGs' "Try it" lines run as written.

A fenced ``bash`` block is run when the line before it (blank lines aside) is a marker:

- ``<!-- runnable -->``: run it with ``bash -euo pipefail``; it must exit 0 within the time limit;
- ``<!-- runnable: server -->``: a command that serves until stopped (``make emulator``): it is started
  in its own process group, must print its ready line, keeps running for the page's later blocks and
  gets SIGTERM when the page is done.

In an example DAG's docstring, the indented literal block after a line ending in ``::`` that starts
with "Try it" is runnable, and ``make emulator`` (what those lines tell a user to start first) runs
beside it.

Each page runs from the clone's root, as a user who only did the quickstart would (``.venv`` exists),
in a clean environment: a fresh ``HOME`` and ``TMPDIR``, a PATH without ``.venv/bin``, no ``AIRFLOW_*``
or ``BCTRL_*`` variables except ``BCTRL_EMULATOR_PORT``, a free port, because several copies of this
suite may run on one machine (the docs' port 8787 is that variable's default). The test prints the
blocks it ran.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _process_group import start_group, stop_group

from airflow_provider_bctrl.testing._wait import free_port

REPO = Path(__file__).resolve().parent.parent
#: Longest a block may run (an ``airflow dags test`` on a busy two-core machine is well under this).
BLOCK_TIMEOUT = 300
#: Longest a server block may take to print its ready line.
SERVER_READY_TIMEOUT = 120
READY_LINE = re.compile(r"listening on http://")
MARKER = re.compile(r"^<!--\s*runnable(?::\s*(?P<kind>[a-z]+))?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<info>\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One shell block found in a page."""

    source: str  # path relative to the repo
    line: int  # 1-based line of the block's first command
    kind: str  # "run" or "server"
    code: str

    @property
    def label(self) -> str:
        first = next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")
        return f"{self.source}:{self.line} [{self.kind}] {first[:70]}"


def markdown_blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The runnable blocks of a Markdown page, and problems with its markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    source = str(path.relative_to(REPO))
    blocks: list[Block] = []
    problems: list[str] = []
    index = 0
    while index < len(lines):
        match = MARKER.match(lines[index].strip())
        if not match:
            index += 1
            continue
        kind = {None: "run", "server": "server"}.get(match.group("kind"))
        marker_line = index + 1
        index += 1
        while index < len(lines) and not lines[index].strip():
            index += 1
        fence = FENCE.match(lines[index]) if index < len(lines) else None
        if kind is None or fence is None or fence.group("info") not in ("bash", "sh", "shell"):
            problems.append(f"{source}:{marker_line}: a runnable marker must precede a ```bash block")
            continue
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        blocks.append(Block(source, start + 1, kind, "\n".join(lines[start:end]) + "\n"))
        index = end + 1
    return blocks, problems


def try_it_blocks(path: Path) -> list[Block]:
    """The "Try it ...::" literal block of an example DAG's docstring (one at most)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    source = str(path.relative_to(REPO))
    for index, line in enumerate(lines):
        if line.startswith("Try it") or (index and lines[index - 1].startswith("Try it")):
            if not line.rstrip().endswith("::"):
                continue
            body: list[str] = []
            cursor = index + 1
            while cursor < len(lines) and (not lines[cursor].strip() or lines[cursor].startswith("    ")):
                body.append(lines[cursor][4:])
                cursor += 1
            code = "\n".join(body).strip() + "\n"
            return [Block(source, index + 3, "run", code)]
    return []


def pages() -> dict[str, list[Block]]:
    """Every page with runnable blocks, in a stable order; example DAGs get ``make emulator`` first."""
    found: dict[str, list[Block]] = {}
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        blocks, _ = markdown_blocks(path)
        if blocks:
            found[str(path.relative_to(REPO))] = blocks
    for path in sorted((REPO / "example_dags").glob("*.py")):
        blocks = try_it_blocks(path)
        if blocks:
            # What the "Try it" lines tell a user to start first, in another terminal.
            server = Block(blocks[0].source, blocks[0].line - 3, "server", "make emulator\n")
            found[str(path.relative_to(REPO))] = [server, *blocks]
    return found


PAGES = pages()


def test_markers_are_well_formed_and_the_pages_we_promise_have_runnable_blocks() -> None:
    problems = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        problems += markdown_blocks(path)[1]
    assert problems == []
    # The commands a user meets first are covered; a marker lost in an edit fails here, not silently.
    for page in ("README.md", "docs/emulator.md", *(f"example_dags/{n}.py" for n in _try_it_dags())):
        assert page in PAGES, f"{page} has no runnable block"
    assert sum(len(blocks) for blocks in PAGES.values()) >= 10


def _try_it_dags() -> list[str]:
    return ["bctrl_report_pipeline", "bctrl_report_taskflow", "bctrl_upload_many"]


def _clean_env(work: Path) -> dict[str, str]:
    home, tmp = work / "home", work / "tmp"
    home.mkdir()
    tmp.mkdir()
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class _Server:
    """A server block running in its own process group, with its output in a file."""

    def __init__(self, block: Block, env: dict[str, str], log: Path) -> None:
        self.block = block
        self.log = log
        self.process = start_group(["bash", "-euo", "pipefail", "-c", block.code], env, log, cwd=REPO)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if READY_LINE.search(self.log.read_text(errors="replace")):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        pytest.fail(
            f"{self.block.label} did not become ready:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def stop(self) -> None:
        stop_group(self.process, grace=15)


@pytest.fixture(scope="module")
def clean_env() -> Iterator[dict[str, str]]:
    """One clean environment for all pages, as for a user who follows one page after another.

    Sharing ``HOME`` lets the pages' ``airflow db migrate`` find the database the first page created
    (the first one runs on a fresh home); each page still starts its own emulator.
    """
    work = Path(tempfile.mkdtemp(prefix="bctrl-docs-commands-"))
    yield _clean_env(work)
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.airflow_lines(
    "3.3",
    reason="the documented commands run in the clone's .venv (the newest line), whichever line pytest runs on",
)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_runnable_blocks_run_as_written(
    page: str, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**clean_env, "BCTRL_EMULATOR_PORT": str(free_port())}  # a port of its own per page
    work = Path(tempfile.mkdtemp(prefix="bctrl-docs-page-"))
    servers: list[_Server] = []
    ran: list[str] = []
    try:
        for number, block in enumerate(PAGES[page]):
            if block.kind == "server":
                server = _Server(block, env, work / f"server-{number}.log")
                servers.append(server)
                server.wait_ready()
                ran.append(f"started  {block.label}")
                continue
            started = time.monotonic()
            try:
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block.code],
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=BLOCK_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                pytest.fail(f"{block.label} did not finish within {BLOCK_TIMEOUT} s")
            elapsed = time.monotonic() - started
            if result.returncode != 0:
                pytest.fail(
                    f"{block.label} exited {result.returncode} after {elapsed:.0f} s\n--- block ---\n"
                    f"{block.code}--- output (tail) ---\n{(result.stdout + result.stderr)[-4000:]}"
                )
            ran.append(f"ran ok   {block.label} ({elapsed:.0f} s)")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        with capsys.disabled():
            print(f"\n[docs commands] {page}:")
            for entry in ran:
                print(f"  {entry}")
    assert ran, f"no block of {page} ran"
