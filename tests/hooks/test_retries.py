"""The retry policy against injected faults: what is retried, how long it waits, and no duplicates.

Each case ends either in success with exactly one durable copy whose sha256 equals the source, or in a
typed error within a bounded time and with no duplicate. The emulator's request log tells how many
requests really reached it.
"""

from __future__ import annotations

import email.utils
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import LoopbackServer, relay_to

from airflow_provider_bctrl.exceptions import (
    BctrlRateLimitError,
    BctrlServerError,
    BctrlTransportError,
    BctrlUncertainServerError,
    BctrlUncertainTransportError,
)
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

pytestmark = pytest.mark.usefixtures("bctrl_conn_env")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "retry-source.bin"
    path.write_bytes(hashlib.sha256(str(tmp_path).encode()).digest() * 40_000)  # 1.28 MB, unique per test
    return path


def _copies(emu: BctrlEmulator, source: Path) -> list[dict]:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    return [f for f in emu.stored_files() if f["sha256"] == digest]


def _count(emu: BctrlEmulator, route: str) -> int:
    return sum(1 for entry in emu.requests_log() if entry["route"] == route)


def _wait_for_count(emu: BctrlEmulator, route: str, expected: int, seconds: float = 10) -> int:
    """The log records a request when it completes; a delayed one lands late."""
    deadline = time.monotonic() + seconds
    while _count(emu, route) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return _count(emu, route)


def _hook(**kwargs: object) -> BctrlHook:
    kwargs.setdefault("backoff_base", 0.05)
    return BctrlHook(**kwargs)  # type: ignore[arg-type]


def test_429_with_retry_after_seconds_is_waited_out(
    emu: BctrlEmulator, runtime_id: str, source: Path
) -> None:
    emu.add_fault("upload", status=429, retry_after="1")
    emu.clear_requests_log()
    hook = _hook(max_retries=2)
    started = time.monotonic()
    staged = hook.upload_file(runtime_id, source)
    elapsed = time.monotonic() - started

    assert hook.retry_waits == [1.0]
    assert 1.0 <= elapsed < 10
    assert _count(emu, "upload") == 2
    (copy,) = _copies(emu, source)
    assert copy["id"] == staged.id


def test_429_with_http_date_is_waited_out(emu: BctrlEmulator, runtime_id: str, source: Path) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    emu.add_fault("upload", status=429, retry_after=when)
    emu.clear_requests_log()
    hook = _hook(max_retries=2)
    hook.upload_file(runtime_id, source)
    (wait,) = hook.retry_waits
    assert 0.5 <= wait <= 2.0  # whole-second dates: the wait is what is left of the 2 s
    assert _count(emu, "upload") == 2
    assert len(_copies(emu, source)) == 1


def test_retry_after_is_capped_by_max_retry_wait(emu: BctrlEmulator, runtime_id: str, source: Path) -> None:
    emu.add_fault("upload", status=429, retry_after="3600")
    hook = _hook(max_retries=1, max_retry_wait=0.2)
    hook.upload_file(runtime_id, source)
    assert hook.retry_waits == [0.2]


def test_max_retry_wait_from_the_connection(
    emu: BctrlEmulator, runtime_id: str, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_CAPPED", emu.airflow_connection_json({"max_retry_wait": 1}))
    emu.add_fault("upload", status=429, retry_after="3600")
    hook = BctrlHook("bctrl_capped", max_retries=1)
    hook.upload_file(runtime_id, source)
    assert hook.retry_waits == [1.0]
    assert hook.settings.max_retry_wait == 1.0


def test_429_beyond_max_retries_raises_rate_limit_error(
    emu: BctrlEmulator, runtime_id: str, source: Path
) -> None:
    emu.add_fault("upload", count=3, status=429, retry_after="0")
    emu.clear_requests_log()
    with pytest.raises(BctrlRateLimitError) as info:
        _hook(max_retries=1).upload_file(runtime_id, source)
    assert info.value.retry_after == 0.0
    assert _count(emu, "upload") == 2
    assert _copies(emu, source) == []


def test_503_twice_then_success_with_backoff(emu: BctrlEmulator, runtime_id: str, source: Path) -> None:
    emu.add_fault("upload", count=2, status=503)
    emu.clear_requests_log()
    hook = _hook(max_retries=3)
    hook.upload_file(runtime_id, source)
    assert len(hook.retry_waits) == 2
    assert 0.025 <= hook.retry_waits[0] <= 0.05
    assert 0.05 <= hook.retry_waits[1] <= 0.1
    assert _count(emu, "upload") == 3
    assert len(_copies(emu, source)) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_is_not_retried_when_the_server_may_have_acted(
    emu: BctrlEmulator, runtime_id: str, source: Path, status: int
) -> None:
    emu.add_fault("upload", status=status)
    emu.clear_requests_log()
    hook = _hook(max_retries=3)
    with pytest.raises(BctrlUncertainServerError) as info:
        hook.upload_file(runtime_id, source)
    assert info.value.status == status
    assert hook.retry_waits == []
    assert _count(emu, "upload") == 1
    assert _copies(emu, source) == []


def test_500_after_processing_leaves_exactly_one_copy(
    emu: BctrlEmulator, runtime_id: str, source: Path
) -> None:
    emu.add_fault("upload", status=500, after="processing")
    emu.clear_requests_log()
    with pytest.raises(BctrlUncertainServerError, match="may have acted"):
        _hook(max_retries=3).upload_file(runtime_id, source)
    assert _count(emu, "upload") == 1
    assert len(_copies(emu, source)) == 1


def test_drop_after_processing_is_uncertain_and_not_retried(
    emu: BctrlEmulator, runtime_id: str, source: Path
) -> None:
    emu.add_fault("upload", drop=True, after="processing")
    emu.clear_requests_log()
    with pytest.raises(BctrlUncertainTransportError):
        _hook(max_retries=3).upload_file(runtime_id, source)
    assert _count(emu, "upload") == 1
    assert len(_copies(emu, source)) == 1


def test_collect_dropped_before_processing_is_not_retried(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file(runtime_id, "out.txt", b"collect me")
    emu.add_fault("collect", drop=True)
    emu.clear_requests_log()
    hook = _hook(max_retries=3)
    hook.settings  # noqa: B018 - read the connection outside the timed section
    with pytest.raises(BctrlUncertainTransportError):
        hook.collect_file(runtime_id, "out.txt", space_id=emu.space_id)
    assert _count(emu, "collect") == 1


def test_slow_upload_past_the_read_timeout_is_not_retried(
    emu: BctrlEmulator, runtime_id: str, source: Path
) -> None:
    emu.add_fault("upload", delay_seconds=4.0)
    emu.clear_requests_log()
    hook = _hook(max_retries=3, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BctrlUncertainTransportError, match=r"did not answer within 0\.5 s"):
        hook.upload_file(runtime_id, source)
    assert time.monotonic() - started < 3.5  # raised at the 0.5 s read timeout, not after the 4 s answer
    assert _wait_for_count(emu, "upload", 1) == 1  # the slow request completes late, once
    time.sleep(0.3)
    assert _count(emu, "upload") == 1
    assert len(_copies(emu, source)) == 1


def test_reads_retry_on_everything_transient(emu: BctrlEmulator) -> None:
    emu.add_fault("whoami", status=500)
    emu.add_fault("whoami", status=502)
    emu.add_fault("whoami", drop=True)
    emu.add_fault("whoami", delay_seconds=1.5)
    emu.clear_requests_log()
    hook = _hook(max_retries=4, timeout=0.5)
    assert hook.whoami().default_space_id == emu.space_id
    assert len(hook.retry_waits) == 4
    assert _wait_for_count(emu, "whoami", 5) == 5


def test_reads_give_up_after_max_retries(emu: BctrlEmulator) -> None:
    emu.add_fault("whoami", count=3, status=503)
    with pytest.raises(BctrlServerError):
        _hook(max_retries=2).whoami()


class _LateListener:
    """A loopback TCP forwarder to the emulator that only starts listening when told to."""

    def __init__(self, target_port: int) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens here until start(): connections are refused
        self._target_port = target_port
        self._server: LoopbackServer | None = None

    def start(self) -> None:
        if self._server is None:
            upstream = ("127.0.0.1", self._target_port)
            self._server = LoopbackServer(
                relay_to(upstream, lambda: self._server), port=self.port, max_seconds=60
            )

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.fixture
def late_listener(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[_LateListener]:
    """A listener in front of the emulator, not yet listening; the connection ``bctrl_late`` points at it."""
    listener = _LateListener(int(emu.url.rsplit(":", 1)[1]))
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_LATE",
        emu.airflow_connection_json().replace(emu.url, f"http://127.0.0.1:{listener.port}"),
    )
    yield listener
    listener.close()


def test_connection_refused_at_first_is_retried_even_for_upload(
    emu: BctrlEmulator,
    runtime_id: str,
    source: Path,
    late_listener: _LateListener,
) -> None:
    hook = _hook(bctrl_conn_id="bctrl_late", max_retries=2)

    def sleep_then_listen(seconds: float) -> None:
        late_listener.start()  # the server "comes up" during the first backoff
        time.sleep(seconds)

    hook._sleep = sleep_then_listen
    emu.clear_requests_log()
    staged = hook.upload_file(runtime_id, source)
    assert len(hook.retry_waits) == 1
    assert _count(emu, "upload") == 1  # the refused attempt never reached the server
    (copy,) = _copies(emu, source)
    assert copy["id"] == staged.id


def test_connection_refused_gives_a_transport_error(
    source: Path, runtime_id: str, late_listener: _LateListener
) -> None:
    hook = _hook(bctrl_conn_id="bctrl_late", max_retries=1)
    with pytest.raises(BctrlTransportError, match="connection refused") as info:
        hook.upload_file(runtime_id, source)
    assert not isinstance(info.value, BctrlUncertainTransportError)
    assert len(hook.retry_waits) == 1


class _NotTls:
    """A loopback server that answers anything with plain HTTP, so a TLS handshake with it fails.

    It counts the connections it accepts: each one is one attempt by the client.
    """

    def __init__(self) -> None:
        self._server = LoopbackServer(self._answer)
        self.url = f"https://127.0.0.1:{self._server.port}"

    @property
    def accepted(self) -> int:
        return self._server.accepted

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def not_tls(monkeypatch: pytest.MonkeyPatch) -> Iterator[_NotTls]:
    server = _NotTls()
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_DEFAULT",
        f'{{"conn_type": "bctrl", "host": "{server.url}", "password": "bctrl_tls_key"}}',
    )
    yield server
    server.close()


@pytest.mark.parametrize("call", ["whoami", "download"])
def test_a_tls_failure_is_not_retried(not_tls: _NotTls, tmp_path: Path, call: str) -> None:
    """A bad handshake (here: the server does not speak TLS at all) does not heal by trying again."""
    hook = BctrlHook(max_retries=2)
    attempt = {
        "whoami": hook.whoami,
        "download": lambda: hook.download_file("f47ac10b-58cc-4372-a567-0e02b2c3d479", tmp_path / "out.bin"),
    }[call]
    with pytest.raises(BctrlTransportError, match=r"TLS handshake with https://127\.0\.0\.1:\d+ failed"):
        attempt()
    assert not_tls.accepted == 1
    assert hook.retry_waits == []
    assert not (tmp_path / "out.bin").exists()
