"""Issue 12: each class of input an outside probe broke, against independent loopback servers.

Every test names its class. The servers are raw sockets (``tests/_loopback.py``), not the emulator:
they misbehave in ways the emulator never does.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _loopback import HttpRecorder, LoopbackServer, read_request

from airflow_provider_bctrl.exceptions import (
    BctrlApiError,
    BctrlAuthError,
    BctrlConnectionConfigError,
    BctrlInputError,
    BctrlTransportError,
    BctrlUncertainOutcomeError,
    BctrlUncertainServerError,
    BctrlUncertainTransportError,
    BctrlUnexpectedResponseError,
)
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

KEY = "bctrl_hardening_key_0123456789"
#: One answer every JSON call can parse.
ANY_OBJECT = {"id": "file-1", "name": "x.bin", "sizeBytes": 3, "file": {"id": "file-1"}, "artifact": None}
Answer = tuple[int, dict[str, str], bytes]


def _use(monkeypatch: pytest.MonkeyPatch, url: str, **extra: Any) -> None:
    connection = {"conn_type": "bctrl", "host": url, "password": KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps(connection))


def _json(payload: Any, status: int = 200, **headers: str) -> Answer:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


@pytest.fixture
def serve(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Callable[[dict[str, Any]], Answer]], HttpRecorder]]:
    """Start an HTTP recorder answering with ``respond`` and point the default connection at it."""
    started: list[HttpRecorder] = []

    def start(respond: Callable[[dict[str, Any]], Answer]) -> HttpRecorder:
        recorder = HttpRecorder(respond)
        started.append(recorder)
        _use(monkeypatch, recorder.url)
        return recorder

    yield start
    for recorder in started:
        recorder.close()


# ------------------------------------------------------------------ 1: ids that change the request path

ID_KINDS = [
    ".",
    "..",
    "a/b",
    "%2e",
    "%2E%2E",
    "a\\b",
    ".a",
    "a.",
    "a.b",
    "~t",
    "é",
    "a b",
    "x:y",
    "@",
    "+",
    ";",
    "=",
    "!",
    "*",
    "'",
    "(",
    "\uff0e",  # fullwidth full stop
    "\u2024",  # one dot leader
]
CALLS: dict[str, tuple[Callable[[BctrlHook, str, Path], Any], str]] = {
    "upload": (lambda hook, i, tmp: hook.upload_file(i, tmp / "in.csv"), "/v1/runtimes/{}/files/upload"),
    "collect-runtime": (
        lambda hook, i, tmp: hook.collect_file(i, "out.csv", space_id="space-1"),
        "/v1/spaces/space-1/runtimes/{}/files/collect",
    ),
    "collect-space": (
        lambda hook, i, tmp: hook.collect_file("rt-1", "out.csv", space_id=i),
        "/v1/spaces/{}/runtimes/rt-1/files/collect",
    ),
    "stage": (lambda hook, i, tmp: hook.stage_file(i, "file-1"), "/v1/runtimes/{}/files/stage"),
    "get_file": (lambda hook, i, tmp: hook.get_file(i), "/v1/files/{}"),
    "download": (lambda hook, i, tmp: hook.download_file(i, tmp / "out.bin"), "/v1/files/{}/content"),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_every_id_reaches_the_documented_path_or_is_refused(
    serve: Callable[..., HttpRecorder], tmp_path: Path, call: str
) -> None:
    """Class 1: the request line's path is the template with the id as one quoted segment, or nothing is sent."""
    recorder = serve(
        lambda request: (
            (200, {"Content-Type": "application/octet-stream"}, b"abc")
            if request["target"].endswith("/content")
            else _json(ANY_OBJECT)
        )
    )
    (tmp_path / "in.csv").write_text("a,b\n")
    run, template = CALLS[call]
    refused = []
    for value in ID_KINDS:
        recorder.requests.clear()
        hook = BctrlHook(max_retries=0)
        try:
            run(hook, value, tmp_path)
        except BctrlInputError:
            assert recorder.requests == [], value
            refused.append(value)
            continue
        (request,) = recorder.requests
        assert request["target"] == template.format(quote(value, safe="")), value
    assert {".", "..", "a/b", "%2e", "%2E%2E", "a\\b"} <= set(refused)
    assert "a.b" not in refused


def test_stage_sends_the_file_id_as_given(serve: Callable[..., HttpRecorder]) -> None:
    recorder = serve(lambda request: _json(ANY_OBJECT))
    with pytest.raises(BctrlInputError, match="file_id"):
        BctrlHook(max_retries=0).stage_file("rt-1", ".")
    BctrlHook(max_retries=0).stage_file("rt-1", "é b")
    (request,) = recorder.requests
    assert json.loads(request["body"])["fileId"] == "é b"


def test_operators_refuse_a_dot_id_before_creating_the_hook() -> None:
    from airflow_provider_bctrl.operators.files import BctrlDownloadFileOperator
    from airflow_provider_bctrl.operators.runtime_files import BctrlStageFileOperator

    for op in (
        BctrlStageFileOperator(task_id="stage", runtime_id=".", file_id="f-1"),
        BctrlDownloadFileOperator(task_id="download", file_id=".", destination="/tmp/x.bin"),
    ):
        with pytest.raises(BctrlInputError, match="not a valid id"):
            op.execute({})  # type: ignore[arg-type]
        assert "hook" not in vars(op)


# ------------------------------------------------------------------ 2: servers that drip their answer


def _dripping(
    head: bytes, body_piece: bytes, *, pause: float = 0.2, seconds: float = 8.0
) -> Callable[[socket.socket], None]:
    """A handler that reads the request, sends ``head`` and then ``body_piece`` every ``pause`` s."""

    def handle(conn: socket.socket) -> None:
        with conn:
            read_request(conn)
            conn.sendall(head)
            stop = time.monotonic() + seconds
            while time.monotonic() < stop:
                conn.sendall(body_piece)
                time.sleep(pause)

    return handle


@pytest.fixture
def drip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(handle: Callable[[socket.socket], None], scheme: str = "http") -> LoopbackServer:
        server = LoopbackServer(handle)
        servers.append(server)
        _use(monkeypatch, f"{scheme}://127.0.0.1:{server.port}")
        return server

    yield start
    for server in servers:
        server.close()


def test_a_dripped_head_ends_within_twice_the_timeout(drip: Callable[..., LoopbackServer]) -> None:
    """Class 2: status line and headers a byte at a time, each byte well within the read timeout."""
    drip(_dripping(b"", b"H", pause=0.1))
    started = time.monotonic()
    with pytest.raises(BctrlTransportError, match=r"status and headers of its answer within 1 s"):
        BctrlHook(timeout=0.5, max_retries=0).whoami()
    assert time.monotonic() - started < 3


def test_a_dripped_json_body_ends_within_its_deadline(drip: Callable[..., LoopbackServer]) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    drip(_dripping(head, b" " * 5))
    started = time.monotonic()
    with pytest.raises(BctrlTransportError, match=r"whole answer within 1 s"):
        BctrlHook(timeout=0.5, max_retries=0).whoami()
    assert time.monotonic() - started < 3


def test_a_dripped_upload_answer_is_uncertain_and_not_retried(
    drip: Callable[..., LoopbackServer], tmp_path: Path
) -> None:
    server = drip(_dripping(b"", b"H", pause=0.1))
    source = tmp_path / "a.csv"
    source.write_text("x")
    started = time.monotonic()
    with pytest.raises(BctrlUncertainTransportError):
        BctrlHook(timeout=0.5, max_retries=2).upload_file("rt-1", source)
    assert time.monotonic() - started < 3
    assert server.accepted == 1


def test_a_trickling_download_ends_per_attempt_and_leaves_nothing(
    drip: Callable[..., LoopbackServer], tmp_path: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    server = drip(_dripping(head, b"x" * 20))
    started = time.monotonic()
    with pytest.raises(BctrlTransportError, match=r"below the 1024 bytes/s"):
        BctrlHook(timeout=1, max_retries=1, backoff_base=0.01).download_file("file-1", tmp_path / "out.bin")
    assert time.monotonic() - started < 7  # two attempts of about 1 s each
    assert server.accepted == 2
    assert list(tmp_path.iterdir()) == []


def test_a_download_that_starts_fast_and_then_trickles_ends_within_a_few_timeouts(
    drip: Callable[..., LoopbackServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a fast start the body is read in blocking bulk reads; the watchdog still bounds each one.

    Bulk reads start at ``timeout`` >= 16 s (below, one asks for less than a TLS record); the test lets
    them start at 1 s so that it takes seconds, not minutes.
    """
    from airflow_provider_bctrl import _deadlines

    monkeypatch.setattr(_deadlines, "_BULK_MIN", 1)
    size = 8 * 1024 * 1024
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        with conn:
            read_request(conn)
            conn.sendall(head.encode() + b"x" * (4 * 1024 * 1024))  # fast: bulk reads from here on
            stop = time.monotonic() + 8
            while time.monotonic() < stop:
                conn.sendall(b"x" * 20)  # 100 bytes/s, below the limit, never silent for a whole timeout
                time.sleep(0.2)

    server = drip(handle)
    started = time.monotonic()
    # the bulk reads' own words: fewer than one second's worth at the limit arrived within the timeout
    with pytest.raises(
        BctrlTransportError, match=r"less than 1024 bytes of the download in 1 s, below the 1024"
    ):
        BctrlHook(timeout=1, max_retries=0).download_file("file-1", tmp_path / "out.bin")
    assert time.monotonic() - started < 4
    assert server.accepted == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 3: a server that echoes the key


def _echo_auth(request: dict[str, Any]) -> Answer:
    said = request["headers"]["authorization"]
    return _json(
        {
            "code": "auth.invalid_key",
            "error": f"the key in {said} is wrong",
            "hint": f"you sent Authorization: {said}",
            "details": {"received": said, said: [said]},
            "requestId": said,
        },
        status=401,
    )


def test_an_echoed_key_leaves_no_trace_in_errors_or_pickles(serve: Callable[..., HttpRecorder]) -> None:
    """Class 3: message, every attribute, repr and pickle of the error are free of the key."""
    serve(_echo_auth)
    with pytest.raises(BctrlAuthError) as info:
        BctrlHook(max_retries=0).whoami()
    error = info.value
    texts = [str(error), repr(error), error.error, error.hint, error.request_id, json.dumps(error.details)]
    assert all(KEY not in (text or "") for text in texts)
    assert KEY.encode() not in pickle.dumps(error)
    assert KEY not in str(pickle.loads(pickle.dumps(error)).details)


def test_an_echoed_key_stays_out_of_the_test_button(serve: Callable[..., HttpRecorder]) -> None:
    serve(_echo_auth)
    ok, message = BctrlHook().test_connection()
    assert ok is False
    assert "***" in message
    assert KEY not in message


def test_an_echoed_key_stays_out_of_results(serve: Callable[..., HttpRecorder], tmp_path: Path) -> None:
    """A 200 that echoes the header: the result (the operator's return_value XCom) is redacted."""
    serve(
        lambda request: _json({**ANY_OBJECT, "echo": {"authorization": request["headers"]["authorization"]}})
    )
    source = tmp_path / "a.csv"
    source.write_text("x")
    staged = BctrlHook(max_retries=0).upload_file("rt-1", source)
    assert staged.raw["echo"] == {"authorization": "Bearer ***"}
    assert KEY not in json.dumps(staged.raw)


# ------------------------------------------------------------------ 4: TLS failures are certain


def _plain_http_answer(conn: socket.socket) -> None:
    with conn:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_a_failed_handshake_on_upload_is_certain(drip: Callable[..., LoopbackServer], tmp_path: Path) -> None:
    """Class 4: https to a server that does not speak TLS. Nothing was sent: no "may have acted"."""
    server = drip(_plain_http_answer, scheme="https")
    source = tmp_path / "a.csv"
    source.write_text("x")
    with pytest.raises(BctrlTransportError, match="Nothing was sent") as info:
        BctrlHook(max_retries=2).upload_file("rt-1", source)
    assert not isinstance(info.value, BctrlUncertainOutcomeError)
    assert "may have acted" not in str(info.value)
    assert server.accepted == 1  # a protocol or certificate failure does not heal by retrying


def test_a_stalled_handshake_is_retried_as_never_sent(
    drip: Callable[..., LoopbackServer], tmp_path: Path
) -> None:
    def silent(conn: socket.socket) -> None:
        with conn:
            time.sleep(3)

    server = drip(silent, scheme="https")
    source = tmp_path / "a.csv"
    source.write_text("x")
    with pytest.raises(BctrlTransportError, match=r"TLS handshake .* timed out") as info:
        BctrlHook(timeout=0.3, max_retries=1, backoff_base=0.01).upload_file("rt-1", source)
    assert not isinstance(info.value, BctrlUncertainOutcomeError)
    assert server.accepted == 2


def test_the_test_button_says_tls(drip: Callable[..., LoopbackServer]) -> None:
    drip(_plain_http_answer, scheme="https")
    ok, message = BctrlHook().test_connection()
    assert ok is False
    assert message.startswith("TLS handshake failed: ")


# ------------------------------------------------------------------ 5: settings that are not finite or not URLs


@pytest.mark.parametrize(
    ("arguments", "extra", "host", "field"),
    [
        ({}, {"max_retry_wait": "nan"}, None, "max_retry_wait"),
        ({}, {"timeout": "nan"}, None, "timeout"),
        ({}, {"timeout": "inf"}, None, "timeout"),
        ({}, {"max_retries": "-inf"}, None, "max_retries"),
        ({"max_retries": float("inf")}, {}, None, "max_retries"),
        ({"max_retries": 10**6}, {}, None, "max_retries"),
        ({"backoff_base": -1}, {}, None, "backoff_base"),
        ({"max_retry_wait": float("nan")}, {}, None, "max_retry_wait"),
        ({"timeout": 0}, {}, None, "timeout"),
        ({}, {}, "https://api.example.com:70000", "base URL"),
        ({}, {}, "http://[::1", "base URL"),
        ({}, {}, "http:/evil.com", "base URL"),
        ({}, {}, "https:evil.com", "base URL"),
        ({}, {}, "http://bctrl.localhost:8787", "plain http"),
    ],
)
def test_every_setting_is_checked_once_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
    arguments: dict[str, Any],
    extra: dict[str, Any],
    host: str | None,
    field: str,
) -> None:
    """Class 5: a typed error naming the field, before anything could be sent."""
    connection: dict[str, Any] = {"conn_type": "bctrl", "password": KEY, "extra": extra}
    if host:
        connection["host"] = host
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps(connection))
    with pytest.raises(BctrlConnectionConfigError, match=field):
        _ = BctrlHook(**arguments).settings


@pytest.mark.parametrize("port", [70000, 99999])
def test_the_port_field_is_checked(monkeypatch: pytest.MonkeyPatch, port: Any) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_DEFAULT",
        json.dumps({"conn_type": "bctrl", "host": "api.example.com", "port": port, "password": KEY}),
    )
    with pytest.raises(BctrlConnectionConfigError, match="port"):
        _ = BctrlHook().settings


# ------------------------------------------------------------------ 6: pathological answers


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_a_deeply_nested_500_on_upload_stays_uncertain(
    serve: Callable[..., HttpRecorder], tmp_path: Path
) -> None:
    """Class 6: a JSON body too deep to parse is "not a BCTRL answer"; the status still classifies it."""
    serve(lambda request: (500, {"Content-Type": "application/json"}, _deep(100_000)))
    source = tmp_path / "a.csv"
    source.write_text("x")
    with pytest.raises(BctrlUncertainServerError):
        BctrlHook(max_retries=0).upload_file("rt-1", source)


def test_a_deeply_nested_429_is_still_retried(serve: Callable[..., HttpRecorder]) -> None:
    answers = iter([(429, {"Content-Type": "application/json", "Retry-After": "0"}, _deep(100_000))])
    recorder = serve(lambda request: next(answers, None) or _json({"organizationId": "org-1"}))
    assert BctrlHook(max_retries=1).whoami().organization_id == "org-1"
    assert len(recorder.requests) == 2


def test_a_deeply_nested_success_is_an_unexpected_response(serve: Callable[..., HttpRecorder]) -> None:
    serve(lambda request: (200, {"Content-Type": "application/json"}, _deep(100_000)))
    with pytest.raises(BctrlUnexpectedResponseError):
        BctrlHook(max_retries=0).whoami()


def test_a_huge_json_answer_is_refused_while_it_is_read(serve: Callable[..., HttpRecorder]) -> None:
    body = b'{"organizationId": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    serve(lambda request: (200, {"Content-Type": "application/json"}, body))
    with pytest.raises(BctrlUnexpectedResponseError, match="larger than 16 MiB"):
        BctrlHook(max_retries=0).whoami()


# ------------------------------------------------------------------ 7: compression nobody asked for

DATA = bytes(range(256)) * 400


def _gzip_server(size_bytes: int, *, chunked: bool) -> Callable[[dict[str, Any]], Answer]:
    def respond(request: dict[str, Any]) -> Answer:
        if request["target"].endswith("/content"):
            packed = gzip.compress(DATA)
            headers = {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"}
            if chunked:
                headers["Transfer-Encoding"] = "chunked"
            return 200, headers, packed
        return _json({"id": "file-1", "name": "data.bin", "sizeBytes": size_bytes})

    return respond


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_unrequested_gzip_download_writes_the_stored_bytes(
    serve: Callable[..., HttpRecorder], tmp_path: Path, chunked: bool
) -> None:
    """Class 7: the decoded bytes, checked against the stored file's sizeBytes, are what is written."""
    recorder = serve(_gzip_server(len(DATA), chunked=chunked))
    target = tmp_path / "out.bin"
    BctrlHook(max_retries=2).download_file("file-1", target)
    assert target.read_bytes() == DATA
    assert [r["target"] for r in recorder.requests] == ["/v1/files/file-1/content", "/v1/files/file-1"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_gzip_download_of_the_wrong_size_is_one_clear_error(
    serve: Callable[..., HttpRecorder], tmp_path: Path, chunked: bool
) -> None:
    recorder = serve(_gzip_server(len(DATA) + 1, chunked=chunked))
    with pytest.raises(BctrlUnexpectedResponseError, match="after undoing the gzip encoding"):
        BctrlHook(max_retries=2).download_file("file-1", tmp_path / "out.bin")
    assert [r["target"] for r in recorder.requests].count("/v1/files/file-1/content") == 1  # no retry loop
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 8: destinations that cannot be written


@pytest.mark.parametrize("kind", ["long name", "pseudo file system", "through a file"])
def test_an_unwritable_destination_fails_before_the_get(
    serve: Callable[..., HttpRecorder], tmp_path: Path, kind: str
) -> None:
    """Class 8: the temporary sibling is created and removed before the bytes are asked for."""
    (tmp_path / "a-file").write_text("x")
    destination = {
        "long name": tmp_path / ("n" * 250),
        "pseudo file system": Path("/proc/bctrl-hardening.bin"),
        "through a file": tmp_path / "a-file" / "out.bin",
    }[kind]
    recorder = serve(lambda request: (200, {"Content-Type": "application/octet-stream"}, b"abc"))
    with pytest.raises(BctrlInputError, match="destination"):
        BctrlHook(max_retries=0).download_file("file-1", destination)
    assert recorder.requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# ------------------------------------------------------------------ 10: smaller inconsistencies


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (
            lambda hook: hook.collect_file("rt-1", "out.csv", space_id="s", storage_path="a\\..\\b"),
            "storage_path",
        ),
        (lambda hook: hook.collect_file("rt-1", "\\..\\x", space_id="s"), "path"),
        (
            lambda hook: hook.collect_file("rt-1", "out.csv", space_id="s", artifact={"name": "a\r\nb"}),
            "artifact",
        ),
        (
            lambda hook: hook.collect_file("rt-1", "out.csv", space_id="s", artifact={"kind": "k\x00"}),
            "artifact",
        ),
        (lambda hook: hook.stage_file("rt-1", "f-1", runtime_path="a\\..\\b"), "runtime_path"),
    ],
)
def test_one_rule_for_path_and_name_like_fields(
    serve: Callable[..., HttpRecorder], call: Callable[[BctrlHook], Any], argument: str
) -> None:
    recorder = serve(lambda request: _json(ANY_OBJECT))
    with pytest.raises(BctrlInputError, match=argument):
        call(BctrlHook(max_retries=0))
    assert recorder.requests == []


def test_a_destination_path_with_backslash_dots_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("x")
    with pytest.raises(BctrlInputError, match="destination_path"):
        BctrlHook().upload_file("rt-1", source, destination_path="a\\..\\b")


def test_a_redirect_loop_costs_a_few_requests(serve: Callable[..., HttpRecorder]) -> None:
    recorder = serve(lambda request: (302, {"Location": request["target"]}, b""))
    with pytest.raises(BctrlTransportError, match="redirected"):
        BctrlHook(max_retries=3).whoami()
    assert len(recorder.requests) <= 11


@pytest.mark.parametrize("source", ["/proc/self/status", "/proc/cpuinfo"])
def test_a_pseudo_file_source_is_refused_before_sending(
    serve: Callable[..., HttpRecorder], source: str
) -> None:
    recorder = serve(lambda request: _json(ANY_OBJECT))
    with pytest.raises(BctrlInputError, match="pseudo file system"):
        BctrlHook(max_retries=0).upload_file("rt-1", source)
    assert recorder.requests == []


def test_a_regular_file_under_dev_but_not_dev_shm_is_refused(serve: Callable[..., HttpRecorder]) -> None:
    """/dev's other mounts (/dev/mqueue, ...) hold regular files whose sizes are not their contents'."""
    recorder = serve(lambda request: _json(ANY_OBJECT))
    if not os.access("/dev", os.W_OK):
        pytest.skip("cannot create a regular file under /dev here (CI runs as root and can)")
    with (
        tempfile.NamedTemporaryFile(dir="/dev", prefix="bctrl-test-", suffix=".bin") as handle,
        pytest.raises(BctrlInputError, match="pseudo file system"),
    ):
        BctrlHook(max_retries=0).upload_file("rt-1", handle.name)
    assert recorder.requests == []


def test_a_device_under_dev_is_still_refused(serve: Callable[..., HttpRecorder]) -> None:
    recorder = serve(lambda request: _json(ANY_OBJECT))
    with pytest.raises(BctrlInputError, match="not a regular file"):
        BctrlHook(max_retries=0).upload_file("rt-1", "/dev/zero")
    assert recorder.requests == []


# ------------------------------------------------------------------ 11: a 401 inside a task


def test_a_401_names_the_connection_and_the_field(serve: Callable[..., HttpRecorder]) -> None:
    serve(
        lambda request: _json(
            {"code": "auth.invalid_key", "error": "bad key", "hint": "check the Authorization header"},
            status=401,
        )
    )
    with pytest.raises(BctrlApiError) as info:
        BctrlHook(max_retries=0).whoami()
    assert "Airflow connection 'bctrl_default'" in str(info.value)
    assert "API key (password) field" in str(info.value)
