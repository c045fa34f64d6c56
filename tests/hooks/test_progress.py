"""Progress lines for long transfers: at most every 10 % or every 30 s, then one summary line.

The rate rule is tested on :class:`TransferProgress` with a fake clock; one real upload through the
hook against the emulator checks the lines a task log actually gets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from _loopback import HttpRecorder

from airflow_provider_bctrl._progress import TransferProgress, human_size
from airflow_provider_bctrl.exceptions import BctrlNotFoundError, BctrlUnexpectedResponseError
from airflow_provider_bctrl.hooks import bctrl as bctrl_module
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

MIB = 1024 * 1024
HOOK_LOG = "tests.bctrl.hook"
PROGRESS = re.compile(
    r"^(?P<label>.+): (?P<done>\d+\.\d) / (?P<total>\d+\.\d) MiB \((?P<percent>\d+)%\), (?P<rate>\d+\.\d) MiB/s$"
)
SUMMARY = re.compile(
    r"^(?P<label>.+) finished: (?P<size>\d+(?:\.\d)?) (?P<size_unit>B|KiB|MiB|GiB|TiB) in (?P<seconds>\d+\.\d\d) s "
    r"\((?P<rate>\d+(?:\.\d)?) (?P<rate_unit>B|KiB|MiB|GiB|TiB)/s\)(?:; (?P<outcome>.+))?$"
)

WAITING = re.compile(
    r"^(?P<label>.+): waiting for BCTRL to store (?P<size>\d+(?:\.\d)? (?:B|KiB|MiB|GiB|TiB)) "
    r"\(all sent in (?P<sent>\d+\.\d) s; no answer for (?P<waited>\d+) s yet\)$"
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    log = logging.getLogger("tests.bctrl.progress")
    caplog.set_level(logging.INFO, logger=log.name)
    return log


def _messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == name]


def _progress_lines(messages: list[str]) -> list[re.Match[str]]:
    return [match for message in messages if (match := PROGRESS.match(message))]


def _summary_lines(messages: list[str]) -> list[re.Match[str]]:
    return [match for message in messages if (match := SUMMARY.match(message))]


def _feed(progress: TransferProgress, clock: FakeClock, total: int, seconds_per_mib: float) -> None:
    """Report ``total`` bytes to ``progress`` one MiB at a time, ``seconds_per_mib`` apart on ``clock``."""
    for done in range(MIB, total + 1, MIB):
        clock.now += seconds_per_mib
        progress.update(done)


def _logged_hook(caplog: pytest.LogCaptureFixture, **options: Any) -> BctrlHook:
    """A hook (no retries unless ``options`` say otherwise) whose log lines caplog captures under ``HOOK_LOG``.

    The task log is structlog (printed, not captured by caplog); a stdlib logger in its place
    receives exactly the calls the hook makes.
    """
    hook = BctrlHook(**{"max_retries": 0, **options})
    hook._log = logging.getLogger(HOOK_LOG)  # type: ignore[assignment]
    caplog.set_level(logging.INFO, logger=HOOK_LOG)
    return hook


# ------------------------------------------------------------------------ the rate rule, fake clock


def test_a_fast_transfer_logs_once_per_tenth_and_a_summary(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    total = 1000 * MIB
    progress = TransferProgress(logger, "Upload of big.bin", total, clock=clock)
    _feed(progress, clock, total, 0.001)  # 1000 updates, 1 ms apart: the 30 s rule never fires
    progress.finish()

    messages = _messages(caplog, logger.name)
    lines = _progress_lines(messages)
    assert [int(line["percent"]) for line in lines] == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert all(line["label"] == "Upload of big.bin" and line["total"] == "1000.0" for line in lines)
    (summary,) = _summary_lines(messages)
    assert (summary["size"], summary["size_unit"]) == ("1000.0", "MiB")
    assert summary["seconds"] == "1.00"
    assert float(summary["rate"]) == pytest.approx(1000.0, rel=0.01)
    assert len(messages) == len(lines) + 1


def test_a_slow_transfer_logs_every_30_seconds(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    total = 100 * MIB
    progress = TransferProgress(logger, "Upload of slow.bin", total, clock=clock)
    stamps: list[float] = []
    done = 0
    for _ in range(300):  # 1 MiB every 10 s for 1000 s: 3 % per 30 s, so time decides
        clock.now += 10.0
        done += MIB // 3
        before = progress.lines
        progress.update(done)
        if progress.lines > before:
            stamps.append(clock.now)

    assert len(stamps) >= 30
    assert all(later - earlier >= 30.0 for earlier, later in pairwise(stamps))
    assert all(later - earlier <= 30.0 for earlier, later in pairwise(stamps))
    assert len(_progress_lines(_messages(caplog, logger.name))) == len(stamps)


@pytest.mark.parametrize("chunk", [1, 7 * MIB, 33 * MIB])
def test_lines_are_at_least_a_tenth_or_30_seconds_apart(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture, chunk: int
) -> None:
    clock = FakeClock()
    total = 1000 * MIB
    progress = TransferProgress(logger, "Upload of x", total, clock=clock)
    logged: list[tuple[float, int]] = [(clock.now, 0)]
    done = 0
    for step in range(5000):
        if done >= total:
            break
        clock.now += 0.5 if step % 3 else 7.0  # uneven pace
        done = min(total, done + (chunk if chunk > 1 else MIB))
        before = progress.lines
        progress.update(done)
        if progress.lines > before:
            logged.append((clock.now, done))
    progress.finish()

    for (t0, b0), (t1, b1) in pairwise(logged):
        assert b1 - b0 >= total // 10 or t1 - t0 >= 30.0
    messages = _messages(caplog, logger.name)
    assert len(_progress_lines(messages)) == len(logged) - 1
    assert len(_summary_lines(messages)) == 1


@pytest.mark.parametrize("chunk", [MIB, 7 * MIB, 33 * MIB, 250 * MIB])
def test_the_line_count_is_bounded_by_tenths_and_half_minutes(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture, chunk: int
) -> None:
    clock = FakeClock()
    total = 1000 * MIB
    started = clock.now
    progress = TransferProgress(logger, "Upload of x", total, clock=clock)
    done = 0
    for step in range(5000):
        if done >= total:
            break
        clock.now += 0.5 if step % 3 else 7.0
        done = min(total, done + chunk)
        progress.update(done)
    progress.finish()

    messages = _messages(caplog, logger.name)
    assert len(_progress_lines(messages)) <= 9 + int((clock.now - started) // 30.0)
    assert len(_summary_lines(messages)) == 1


def test_reaching_the_total_leaves_the_last_word_to_the_summary(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    progress = TransferProgress(logger, "Upload of once.bin", 10 * MIB, clock=clock)
    clock.now += 60.0
    progress.update(10 * MIB)
    clock.now += 0.5
    elapsed = progress.finish()

    messages = _messages(caplog, logger.name)
    assert _progress_lines(messages) == []
    (summary,) = _summary_lines(messages)
    assert (summary["size"], summary["size_unit"]) == ("10.0", "MiB")
    assert elapsed == pytest.approx(60.5)


def test_an_empty_file_gets_a_summary_and_no_division_by_zero(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    progress = TransferProgress(logger, "Upload of empty.txt", 0, clock=FakeClock())
    progress.update(0)
    progress.finish()

    messages = _messages(caplog, logger.name)
    assert len(_summary_lines(messages)) == 1
    assert _progress_lines(messages) == []


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (104, "104 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (10 * MIB, "10.0 MiB"),
        (1024 * MIB, "1.0 GiB"),
        (3 * 1024 * 1024 * MIB, "3.0 TiB"),
    ],
)
def test_sizes_read_in_binary_units(count: int, text: str) -> None:
    assert human_size(count) == text


def test_a_small_transfer_reads_in_bytes_not_zero_mib(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    progress = TransferProgress(logger, "Upload of report.csv", 104, clock=clock)
    progress.update(104)
    clock.now += 0.5
    progress.finish("stored as file f-1")

    (summary,) = _summary_lines(_messages(caplog, logger.name))
    assert summary.string == "Upload of report.csv finished: 104 B in 0.50 s (208 B/s); stored as file f-1"


# ---------------------------------------------------------------------- one real upload, real hook


@pytest.mark.usefixtures("bctrl_conn_env")
def test_a_real_upload_logs_bounded_progress_and_one_summary(
    runtime_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "recording.bin"
    size = 20 * MIB
    with source.open("wb") as out:
        block = os.urandom(MIB)
        for _ in range(size // MIB):
            out.write(block)

    with _logged_hook(caplog) as hook:
        staged = hook.upload_file(runtime_id, source, runtime_path="inputs/recording.bin")

    assert staged.size_bytes == size
    messages = _messages(caplog, HOOK_LOG)
    lines = _progress_lines(messages)
    summaries = _summary_lines(messages)
    assert len(lines) <= 10
    assert len(summaries) == 1
    assert all(line["label"] == "Upload of recording.bin" and line["total"] == "20.0" for line in lines)
    percents = [int(line["percent"]) for line in lines]
    assert percents == sorted(percents)
    assert all(0 < percent < 100 for percent in percents)
    assert summaries[0]["label"] == "Upload of recording.bin"
    assert (summaries[0]["size"], summaries[0]["size_unit"]) == ("20.0", "MiB")
    assert float(summaries[0]["rate"]) > 0
    assert summaries[0]["outcome"] == f"stored as file {staged.id}, runtime path {staged.runtime_path}"
    # The summary comes after every progress line.
    assert messages.index(summaries[0].string) > max(
        (messages.index(line.string) for line in lines), default=-1
    )


def test_a_transfer_within_the_quiet_seconds_logs_only_its_summary(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    total = 100 * MIB
    progress = TransferProgress(logger, "Upload of quick.bin", total, clock=clock, quiet_seconds=2.0)
    _feed(progress, clock, total, 0.01)  # all of it within 1 s
    progress.finish()
    messages = _messages(caplog, logger.name)
    assert _progress_lines(messages) == []
    assert len(_summary_lines(messages)) == 1


def test_after_the_quiet_seconds_the_rate_rule_applies(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    total = 100 * MIB
    progress = TransferProgress(logger, "Upload of steady.bin", total, clock=clock, quiet_seconds=2.0)
    _feed(progress, clock, total, 1.0)  # 100 s in all, 1 % per second
    percents = [int(line["percent"]) for line in _progress_lines(_messages(caplog, logger.name))]
    assert percents == [10, 20, 30, 40, 50, 60, 70, 80, 90]  # past the quiet 2 s, 10 % steps as usual


# ------------------------------------------------------- no silent stretch while the server stores a file


def _slow_answer(delay: float) -> Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes]]:
    """An upload answer that comes ``delay`` seconds after the whole body arrived."""

    def respond(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(delay)
        staged = {"id": "file-slow", "name": "slow.bin", "runtimePath": "inputs/slow.bin", "sizeBytes": 4}
        return 200, {"Content-Type": "application/json"}, json.dumps(staged).encode()

    return respond


SlowUpload = Callable[..., list[str]]


@pytest.fixture
def slow_upload(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[SlowUpload]:
    """``slow_upload(delay, wait_notice=..., quiet_seconds=...)``: upload 4 bytes (``slow.bin``) to a loopback
    server that answers ``delay`` seconds after the body arrived, with the hook's wait notice and quiet
    seconds set as given; the hook's log lines."""
    started: list[HttpRecorder] = []

    def upload(delay: float, *, wait_notice: float, quiet_seconds: float | None = None) -> list[str]:
        monkeypatch.setattr(bctrl_module, "WAIT_NOTICE_SECONDS", wait_notice)
        if quiet_seconds is not None:
            monkeypatch.setattr(bctrl_module, "PROGRESS_QUIET_SECONDS", quiet_seconds)
        recorder = HttpRecorder(_slow_answer(delay))
        started.append(recorder)
        connection = {"conn_type": "bctrl", "host": recorder.url, "password": "bctrl_slow_key_0123"}
        monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps(connection))
        source = tmp_path / "slow.bin"
        source.write_bytes(b"data")
        with _logged_hook(caplog, timeout=30) as hook:
            staged = hook.upload_file("rt-1", source)
        assert staged.id == "file-slow"
        return _messages(caplog, HOOK_LOG)

    yield upload
    for recorder in started:
        recorder.close()


def test_a_late_answer_after_the_upload_is_announced_once(slow_upload: SlowUpload) -> None:
    """The body went out, the server takes its time: one "waiting" line, before the summary."""
    # The answer comes later than the notice, sooner than the notice plus the 30 s repeat interval.
    messages = slow_upload(1.5, wait_notice=0.3)

    waiting = [m for m in messages if WAITING.match(m)]
    assert len(waiting) == 1, messages
    match = WAITING.match(waiting[0])
    assert match is not None
    assert (match["label"], match["size"], match["waited"]) == ("Upload of slow.bin", "4 B", "0")
    (summary,) = _summary_lines(messages)
    assert messages.index(waiting[0]) < messages.index(summary.string)


def test_a_prompt_answer_logs_no_waiting_line(slow_upload: SlowUpload) -> None:
    messages = slow_upload(0.0, wait_notice=5.0)
    assert not [m for m in messages if "waiting for BCTRL" in m]
    assert len(_summary_lines(messages)) == 1


def test_an_unreadable_answer_still_gets_the_summary_line_after_the_start_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes went, the answer is no ``RuntimeStagedFile``: the start line, then the summary, then the error."""
    recorder = HttpRecorder(lambda request: (200, {"Content-Type": "application/json"}, b'{"name": "x"}'))
    try:
        connection = {"conn_type": "bctrl", "host": recorder.url, "password": "bctrl_slow_key_0123"}
        monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps(connection))
        source = tmp_path / "odd.bin"
        source.write_bytes(b"data")
        with (
            _logged_hook(caplog, timeout=30) as hook,
            pytest.raises(BctrlUnexpectedResponseError, match="during upload: the response lacks the key"),
        ):
            hook.upload_file("rt-1", source)
    finally:
        recorder.close()

    messages = _messages(caplog, HOOK_LOG)
    assert len(messages) == 2, messages
    assert messages[0] == f"Uploading {source} (4 bytes) into runtime rt-1 at {recorder.url}"
    (summary,) = _summary_lines(messages)
    assert (summary["label"], summary["size"], summary["outcome"]) == (
        "Upload of odd.bin",
        "4",
        "the answer could not be read",
    )
    assert len(recorder.requests) == 1


def test_waiting_lines_repeat_at_the_interval_and_stop_when_answered(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """Bounded: one line after ``wait_notice``, then one per ``interval``; none after :meth:`answered`."""
    progress = TransferProgress(logger, "Upload of big.bin", 200 * MIB, interval=0.2, wait_notice=0.1)
    progress.update(200 * MIB)
    progress.wait_for_answer()
    deadline = time.monotonic() + 10
    while progress.lines < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    progress.answered()
    count = progress.lines
    time.sleep(0.5)  # more than two intervals: a thread still running would log again

    waiting = [m for m in _messages(caplog, logger.name) if WAITING.match(m)]
    assert count >= 3
    assert len(waiting) == progress.lines == count
    sizes_and_waits = [(m["size"], int(m["waited"])) for m in map(WAITING.match, waiting) if m]
    assert sizes_and_waits[0][0] == "200.0 MiB"
    # the waits grow by one interval each (0.1, 0.3, 0.5 ... printed as whole seconds)
    assert [w for _, w in sizes_and_waits] == sorted(w for _, w in sizes_and_waits)


def test_without_wait_notice_nothing_waits(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    progress = TransferProgress(logger, "Upload of x", 10, wait_notice=None)
    progress.wait_for_answer()
    assert progress._waiting is None


@pytest.mark.usefixtures("bctrl_conn_env")
def test_a_long_download_starts_with_a_line_naming_what_from_where_to_where(
    runtime_id: str,
    emu: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bctrl_module, "PROGRESS_QUIET_SECONDS", 0.0)  # every transfer counts as long
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 1000)
    target = tmp_path / "Q1 reports" / "Übersicht.bin"
    target.parent.mkdir()
    with _logged_hook(caplog) as hook:
        file_id = hook.upload_file(runtime_id, source).id
        hook.download_file(file_id, target)

    messages = _messages(caplog, HOOK_LOG)
    assert messages[0] == f"Uploading {source} (1000 bytes) into runtime {runtime_id} at {emu.url}"
    start = f"Downloading file {file_id} from {emu.url} to {target}"
    assert start in messages
    (summary,) = [m for m in _summary_lines(messages) if m["label"] == f"Download of {file_id}"]
    assert messages.index(start) < messages.index(summary.string)


@pytest.mark.usefixtures("bctrl_conn_env")
def test_a_short_transfer_logs_its_summary_line_only(
    runtime_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Within the quiet seconds the start line is not due: one line per transfer, saying it all."""
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 1000)
    with _logged_hook(caplog) as hook:
        file_id = hook.upload_file(runtime_id, source).id
        hook.download_file(file_id, tmp_path / "out.bin")
    time.sleep(0.1)  # a start line still pending on the watchdog's thread would be cancelled, not late

    messages = _messages(caplog, HOOK_LOG)
    assert [m["label"] for m in _summary_lines(messages)] == ["Upload of in.bin", f"Download of {file_id}"]
    assert len(messages) == 2, messages


@pytest.mark.usefixtures("bctrl_conn_env")
def test_a_failed_transfer_says_what_it_was_before_its_error(
    runtime_id: str, emu: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _logged_hook(caplog) as hook:
        with pytest.raises(BctrlNotFoundError):
            hook.download_file("no-such-file", tmp_path / "out.bin")
        source = tmp_path / "in.bin"
        source.write_bytes(b"x")
        with pytest.raises(BctrlNotFoundError):
            hook.upload_file("no-such-runtime", source)

    assert _messages(caplog, HOOK_LOG) == [
        f"Downloading file no-such-file from {emu.url} to {tmp_path / 'out.bin'}",
        f"Uploading {source} (1 bytes) into runtime no-such-runtime at {emu.url}",
    ]


def test_a_blocked_upload_says_what_it_is_doing_after_the_quiet_seconds(
    slow_upload: SlowUpload, tmp_path: Path
) -> None:
    """The start line comes from the watchdog's thread while the upload waits: not only at its end."""
    messages = slow_upload(1.0, wait_notice=0.5, quiet_seconds=0.2)

    assert messages[0].startswith(f"Uploading {tmp_path / 'slow.bin'} (4 bytes) into runtime rt-1 at http://")
    assert WAITING.match(messages[1]), messages
    assert SUMMARY.match(messages[2]), messages
    assert len(messages) == 3


@pytest.mark.usefixtures("bctrl_conn_env")
def test_transfers_start_no_thread_per_call(
    runtime_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiting and start lines are timed by the watchdog's one thread: none is started per call."""
    import threading

    started: list[str] = []
    original = threading.Thread.start

    def counting(thread: threading.Thread) -> None:
        started.append(thread.name)
        original(thread)

    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 100)
    with BctrlHook(max_retries=0) as hook:
        file_id = hook.upload_file(runtime_id, source).id  # the first call may start the watchdog
        monkeypatch.setattr(threading.Thread, "start", counting)
        for _ in range(5):
            hook.upload_file(runtime_id, source)
            hook.download_file(file_id, tmp_path / "out.bin")
    assert [name for name in started if name.startswith("bctrl")] == []


def test_no_waiting_line_comes_after_the_summary_line() -> None:
    """A waiting line being written while the answer arrives finishes before the summary line, and is
    the last one: the summary used to come first when the log handler was slow on the waiting line."""
    import threading

    lines: list[str] = []
    writing = threading.Event()

    class SlowOnWaiting:
        def info(self, message: str, *args: Any) -> None:
            if "waiting for" in message:
                writing.set()
                time.sleep(0.5)
            lines.append(message % args)

    progress = TransferProgress(SlowOnWaiting(), "Upload of x", 10, wait_notice=0.05, interval=0.2)
    progress.wait_for_answer()
    assert writing.wait(10), "no waiting line was logged"
    progress.finish("stored")
    time.sleep(0.5)  # a next waiting line would be due by now
    assert "finished" in lines[-1], lines
    assert sum("waiting for" in line for line in lines) == 1, lines


def test_a_forked_child_gets_a_watchdog_of_its_own() -> None:
    """The watchdog's thread does not survive a fork: the child's timed actions and deadlines need a
    thread of their own (before, the child believed the parent's thread was running and none fired)."""
    from airflow_provider_bctrl._deadlines import call_later, cancel

    cancel(call_later(60, lambda: None))  # the watchdog thread runs in this process
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a timed action runs
        import threading

        fired = threading.Event()
        call_later(0.05, fired.set)
        os._exit(0 if fired.wait(5) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
