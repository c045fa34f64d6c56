"""Issue 12, second probe: other values of each hardened class, written without reading the first tests.

Each test names its class and the values that got through before. The servers are raw sockets on
loopback (``tests/_loopback.py``), not the emulator.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _loopback import LoopbackServer, read_head, read_request

from airflow_provider_bctrl.exceptions import (
    BctrlConnectionConfigError,
    BctrlInputError,
    BctrlInvalidRequestError,
    BctrlTransportError,
    BctrlUncertainTransportError,
    BctrlUnexpectedResponseError,
)
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

KEY = "bctrl_probe_key_9876543210"
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
STAGED = {"id": "f1", "name": "n", "runtimeId": "r", "runtimePath": "p", "sizeBytes": 3, "expiresAt": None}


def _use(monkeypatch: pytest.MonkeyPatch, url: str, **extra: Any) -> None:
    connection = {"conn_type": "bctrl", "host": url, "password": KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps(connection))


@pytest.fixture
def raw_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """Start a raw loopback server with ``handle`` and point the default connection at it."""
    started: list[LoopbackServer] = []

    def start(handle: Callable[[socket.socket], None]) -> str:
        server = LoopbackServer(handle, max_seconds=60)
        started.append(server)
        url = f"http://127.0.0.1:{server.port}"
        _use(monkeypatch, url)
        return url

    yield start
    for server in started:
        server.close()


# ---------------------------------------------------------------- class 2: a download that trickles


def test_download_below_the_speed_limit_in_bursts_ends_within_a_few_timeouts(
    raw_server: Callable[[Callable[[socket.socket], None]], str], tmp_path: Path
) -> None:
    """900 bytes every 0.9 s is 1,000 bytes/s, below the 1,024 bytes/s limit; each burst arrives just
    after a 1 s window ended, so a check against one window's worth (1,024 bytes) let 1,800 bytes
    over 1.8 s pass, window after window, until the server gave up (36 s)."""

    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(40):
            conn.sendall(b"x" * 900)
            time.sleep(0.9)

    raw_server(handle)
    hook = BctrlHook(timeout=1, max_retries=0)
    started = time.monotonic()
    with pytest.raises(BctrlTransportError, match="below the 1024 bytes/s"):
        hook.download_file("file-1", tmp_path / "out.bin")
    assert time.monotonic() - started < 6
    assert not (tmp_path / "out.bin").exists()


# ---------------------------------------------------------------- class 1: ids that change the path

#: Values that are '.', '..' or a separator after Unicode compatibility folding (NFKC), or cannot be
#: sent as UTF-8 at all.
FOLDING_OR_UNSENDABLE_IDS = [
    "\uff0e",
    "\uff0e\uff0e",
    "\u2024\u2024",
    "\ufe52",
    "a\uff0fb",
    "x\uff1fy",
    "\ud800",
]


@pytest.mark.parametrize("bad_id", FOLDING_OR_UNSENDABLE_IDS, ids=ascii)
@pytest.mark.parametrize(
    "method", ["get_file", "download", "upload", "stage", "stage_file_id", "collect", "collect_space"]
)
def test_ids_that_fold_to_path_syntax_or_are_not_utf8_are_refused_before_sending(
    raw_server: Callable[[Callable[[socket.socket], None]], str], tmp_path: Path, bad_id: str, method: str
) -> None:
    seen: list[bytes] = []
    raw_server(lambda conn: seen.append(read_request(conn)))
    source = tmp_path / "in.txt"
    source.write_text("abc")
    hook = BctrlHook(timeout=1, max_retries=0)
    calls: dict[str, Callable[[], Any]] = {
        "get_file": lambda: hook.get_file(bad_id),
        "download": lambda: hook.download_file(bad_id, tmp_path / "out.bin"),
        "upload": lambda: hook.upload_file(bad_id, source),
        "stage": lambda: hook.stage_file(bad_id, "file-1"),
        "stage_file_id": lambda: hook.stage_file("rt-1", bad_id),
        "collect": lambda: hook.collect_file(bad_id, "/tmp/x", space_id="sp-1"),
        "collect_space": lambda: hook.collect_file("rt-1", "/tmp/x", space_id=bad_id),
    }
    with pytest.raises(BctrlInputError):
        calls[method]()
    assert seen == []


def test_accented_ids_are_still_sent_quoted(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    """The folding rule refuses only what folds into path syntax; other non-ASCII ids pass, quoted."""
    seen: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        body = json.dumps({"id": "f", "name": "n", "sizeBytes": 1}).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )

    raw_server(handle)
    BctrlHook(timeout=2, max_retries=0).get_file("caf\u00e9")
    assert seen == [b"GET /v1/files/caf%C3%A9 HTTP/1.1"]


# ---------------------------------------------------------------- class 10: one rule for every text field

LONE_SURROGATE = "a\udc80"


@pytest.mark.parametrize(
    "call",
    [
        lambda h, src: h.upload_file("rt-1", src, name=LONE_SURROGATE),
        lambda h, src: h.upload_file("rt-1", src, runtime_path=LONE_SURROGATE),
        lambda h, src: h.upload_file("rt-1", src, destination_path=LONE_SURROGATE),
        lambda h, src: h.upload_file("rt-1", src, metadata={"k": LONE_SURROGATE}),
        lambda h, src: h.collect_file("rt-1", "/" + LONE_SURROGATE, space_id="sp-1"),
        lambda h, src: h.collect_file("rt-1", "/x", space_id="sp-1", artifact={"name": LONE_SURROGATE}),
        lambda h, src: h.stage_file("rt-1", "f-1", runtime_path=LONE_SURROGATE),
    ],
    ids=[
        "upload-name",
        "upload-runtime_path",
        "upload-destination_path",
        "upload-metadata",
        "collect-path",
        "collect-artifact-name",
        "stage-runtime_path",
    ],
)
def test_text_that_cannot_be_sent_as_utf8_is_refused_before_sending(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
    tmp_path: Path,
    call: Callable[[BctrlHook, Path], Any],
) -> None:
    seen: list[bytes] = []
    raw_server(lambda conn: seen.append(read_request(conn)))
    source = tmp_path / "in.txt"
    source.write_text("abc")
    with pytest.raises(BctrlInputError, match=r"surrogate|JSON"):
        call(BctrlHook(timeout=1, max_retries=0), source)
    assert seen == []


@pytest.mark.parametrize("path", ["out/\uff0e\uff0e/x", "out\uff0f..\uff0fx"], ids=ascii)
def test_path_segments_that_fold_to_dot_dot_are_refused(path: str) -> None:
    hook = BctrlHook(timeout=1, max_retries=0)
    with pytest.raises(BctrlInputError, match="segments"):
        hook.stage_file("rt-1", "f-1", runtime_path=path)


# ---------------------------------------------------------------- class 3: a server that echoes the key


def _echo_key_in(template: bytes) -> Callable[[socket.socket], None]:
    """A handler that answers ``template`` with ``{K}`` replaced by the key from the request."""

    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(template.replace(b"{K}", KEY.encode()))
        time.sleep(0.3)

    return handle


@pytest.mark.parametrize(
    ("template", "call"),
    [
        (b"HTTP/1.1 {K}\r\n\r\n", lambda h, d: h.stage_file("rt-1", "f-1")),
        (b"HTTP/1.1 2{K} OK\r\n\r\n", lambda h, d: h.whoami()),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{K}\r\n",
            lambda h, d: h.whoami(),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n{K}\r\n",
            lambda h, d: h.download_file("f-1", d / "out.bin"),
        ),
    ],
    ids=["status-line-post", "status-code-get", "chunk-size-json", "chunk-size-download"],
)
def test_a_key_echoed_below_http_stays_out_of_the_printed_exception_chain(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
    tmp_path: Path,
    template: bytes,
    call: Callable[[BctrlHook, Path], Any],
) -> None:
    """requests and urllib3 quote a broken status line or chunk size in their own errors; the typed
    error is raised from them, and a task log prints the whole chain."""
    import pickle
    import traceback

    raw_server(_echo_key_in(template))
    with pytest.raises(BctrlTransportError) as caught:
        call(BctrlHook(timeout=1, max_retries=0), tmp_path)
    error = caught.value
    printed = "".join(traceback.format_exception(error))
    assert KEY not in printed
    assert isinstance(error.__cause__, requests.RequestException)  # still chained, for its type
    assert KEY.encode() not in pickle.dumps(error)
    assert KEY not in repr(vars(error))


# ---------------------------------------------------------------- class 5: URL and id settings


def _hook_for(monkeypatch: pytest.MonkeyPatch, host: str, **extra: Any) -> BctrlHook:
    _use(monkeypatch, host, **extra)
    return BctrlHook(timeout=1, max_retries=0)


@pytest.mark.parametrize(
    "host", ["https://b\u00fccher.example", "https://B\u00dcCHER.example:8443/api"], ids=ascii
)
def test_an_idn_host_gets_the_key_on_the_url_requests_sends(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """requests sends an IDN host in its IDNA form; the key's origin was the Unicode form, so it was
    never attached and every call failed with a 401."""
    hook = _hook_for(monkeypatch, host)
    assert "xn--bcher-kva.example" in hook.settings.base_url
    prepared = hook.session.prepare_request(
        requests.Request("GET", hook.settings.base_url + "/v1/auth/whoami")
    )
    assert prepared.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    "host",
    ["https://ho st", "https://\uff21\uff22\uff23.example", "https://ex\u00adample.com", "https://ho\x00st"],
    ids=ascii,
)
def test_a_host_requests_cannot_send_is_refused_with_the_settings(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    hook = _hook_for(monkeypatch, host)
    with pytest.raises(BctrlConnectionConfigError, match=r"API base URL .* is not a valid URL"):
        hook.whoami()


@pytest.mark.parametrize("value", [["sp-1"], {"id": "sp-1"}, True, 1.5])
@pytest.mark.parametrize("field", ["space_id", "subaccount_id"])
def test_id_extras_of_the_wrong_type_are_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, value: Any
) -> None:
    """``str(["sp-1"])`` passed the id check and was sent as the space id ``['sp-1']``."""
    hook = _hook_for(monkeypatch, "http://127.0.0.1:1", **{field: value})
    with pytest.raises(BctrlConnectionConfigError, match=f"{field}' must be a string id"):
        hook.settings  # noqa: B018


# ---------------------------------------------------------------- class 8: destinations that cannot be written


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, filled up: root cannot write through a full file system (decision 5)."""
    import subprocess

    mount_point = tmp_path / "full"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if done.returncode != 0:
        why = f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr.decode().strip()}"
        if os.environ.get("CI"):  # CI runs as root: there the test must run, never skip unseen
            pytest.fail(why)
        pytest.skip(why)  # a developer's non-root machine: said in pytest's summary
    try:
        with (mount_point / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def _download_answer(body_size: int, *, chunked: bool) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        line = read_request(conn)
        if not line.split(b" ")[1].endswith(b"/content"):
            # Chunked, the stored size is not given either: the write itself has to fail.
            meta = json.dumps(
                {"id": "f-1", "name": "out.bin", "sizeBytes": None if chunked else body_size}
            ).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % len(meta) + meta
            )
            return
        if chunked:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for _ in range(body_size // 65536):
                conn.sendall(b"10000\r\n" + b"x" * 65536 + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
        else:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                % body_size
            )
            conn.sendall(b"x" * body_size)
        time.sleep(0.3)

    return handle


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_full_file_system_is_a_typed_error_and_leaves_nothing(
    raw_server: Callable[[Callable[[socket.socket], None]], str], full_tmpfs: Path, chunked: bool
) -> None:
    """A full disk raised a raw OSError (ENOSPC) in the middle of the body. With a known size the
    free space is checked before the body is read; without one (no Content-Length, no sizeBytes),
    the failing write says which destination, and the temporary file is removed."""
    raw_server(_download_answer(2 * 1024 * 1024, chunked=chunked))
    with pytest.raises(BctrlInputError, match="cannot be written") as caught:
        BctrlHook(timeout=5, max_retries=0).download_file("f-1", full_tmpfs / "out.bin")
    assert ("bytes free" in str(caught.value)) is not chunked
    assert sorted(p.name for p in full_tmpfs.iterdir()) == ["filler"]


def test_a_stored_name_with_a_nul_is_not_used_as_the_file_name(
    raw_server: Callable[[Callable[[socket.socket], None]], str], tmp_path: Path
) -> None:
    """A directory destination takes the stored file's name from the server; a NUL in it raised a raw
    ``ValueError`` (embedded null byte)."""

    def handle(conn: socket.socket) -> None:
        read_request(conn)
        meta = json.dumps({"id": "f-1", "name": "a\u0000b", "sizeBytes": 1}).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(meta)
            + meta
        )

    raw_server(handle)
    with pytest.raises(BctrlInputError, match="no usable name"):
        BctrlHook(timeout=2, max_retries=0).download_file("f-1", tmp_path)


# ---------------------------------------------------------------- class 7: answers compressed without being asked


def _compressed_download(
    encoding: bytes, body: bytes, size: int, requests_seen: list[bytes]
) -> Callable[[socket.socket], None]:
    """Metadata with ``sizeBytes`` = ``size``; the content chunked, with ``Content-Encoding: encoding``."""

    def handle(conn: socket.socket) -> None:
        line = read_request(conn)
        requests_seen.append(line)
        if not line.split(b" ")[1].endswith(b"/content"):
            meta = json.dumps({"id": "f-1", "name": "out.bin", "sizeBytes": size}).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(meta)
                + meta
            )
            return
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Encoding: "
            + encoding
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        time.sleep(0.3)

    return handle


def test_a_decompression_bomb_stops_at_the_stored_size(
    raw_server: Callable[[Callable[[socket.socket], None]], str], tmp_path: Path
) -> None:
    """64 MiB of zeros, gzipped to ~64 KiB, for a stored file of 1,000 bytes: every decoded byte was
    written to disk before the size was compared; now the body stops once it outgrows ``sizeBytes``."""
    import gzip

    seen: list[bytes] = []
    raw_server(_compressed_download(b"gzip", gzip.compress(b"\0" * (64 * 1024 * 1024), 9), 1000, seen))
    hook = BctrlHook(timeout=5, max_retries=0)
    with pytest.raises(BctrlUnexpectedResponseError, match="more than 1000 bytes") as caught:
        hook.download_file("f-1", tmp_path / "out.bin")
    assert "gzip" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"identity, gzip"], ids=ascii)
def test_a_body_that_does_not_decode_is_one_error_not_a_retry_loop(
    raw_server: Callable[[Callable[[socket.socket], None]], str], tmp_path: Path, encoding: bytes
) -> None:
    """Plain bytes labelled as compressed fail to decode the same way on every attempt."""
    seen: list[bytes] = []
    raw_server(_compressed_download(encoding, b"plain bytes, not compressed" * 100, 2700, seen))
    hook = BctrlHook(timeout=5, max_retries=3, max_retry_wait=0.1)
    with pytest.raises(BctrlTransportError, match="does not decode") as caught:
        hook.download_file("f-1", tmp_path / "out.bin")
    assert not caught.value.retryable
    assert sum(line.endswith(b"/content HTTP/1.1") for line in seen) == 1
    assert hook.retry_waits == []


# ---------------------------------------------------------------- class 2 again: the same bound through a proxy

_WHOAMI = b'{"organizationId": "o", "defaultSpaceId": "s"}'
_WHOAMI_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_WHOAMI)
    + _WHOAMI
)


def _drip_whoami(conn: socket.socket) -> None:
    """Read the request, then drip a whoami answer at 2 bytes a second (for 20 s at the most)."""
    read_request(conn)
    deadline = time.monotonic() + 20
    for byte in _WHOAMI_ANSWER:
        if time.monotonic() > deadline:
            return
        conn.sendall(bytes([byte]))
        time.sleep(0.5)


def _assert_whoami_bounded_through(
    monkeypatch: pytest.MonkeyPatch, proxy_variable: str, proxy_url: str, api_url: str
) -> None:
    """With only ``proxy_variable`` set, a ``timeout=1`` whoami fails on the head deadline within 5 s."""
    monkeypatch.setenv(proxy_variable, proxy_url)
    for name in ("NO_PROXY", "no_proxy", proxy_variable.lower()):
        monkeypatch.delenv(name, raising=False)
    _use(monkeypatch, api_url)
    hook = BctrlHook(timeout=1, max_retries=0)
    started = time.monotonic()
    with pytest.raises(BctrlTransportError, match="status and headers"):
        hook.whoami()
    assert time.monotonic() - started < 5


def test_a_dripped_status_line_is_bounded_through_an_http_proxy(
    raw_server: Callable[[Callable[[socket.socket], None]], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``HTTP_PROXY`` requests uses urllib3's proxy manager, whose pools had no head deadline:
    a status line dripped at 2 bytes a second held a ``timeout=1`` call for as long as the server went on."""
    from _loopback import pipe

    upstream_url = raw_server(_drip_whoami)
    upstream_port = int(upstream_url.rsplit(":", 1)[1])

    def forward(conn: socket.socket) -> None:
        head = read_head(conn)
        if not head:
            return
        target = socket.create_connection(("127.0.0.1", upstream_port))
        proxy.track(target)
        target.sendall(head)
        threading.Thread(target=pipe, args=(target, conn), daemon=True).start()
        pipe(conn, target)

    proxy = LoopbackServer(forward, max_seconds=60)
    try:
        _assert_whoami_bounded_through(
            monkeypatch, "HTTP_PROXY", f"http://127.0.0.1:{proxy.port}", upstream_url
        )
    finally:
        proxy.close()


def test_a_dripped_status_line_is_bounded_through_an_https_proxy(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through an ``https://`` proxy urllib3 runs the API's TLS inside the proxy's (an ``SSLTransport``,
    which has no ``shutdown()``): the watchdog's shutdown failed quietly, and a status line dripped at
    2 bytes a second held a ``timeout=1`` call for as long as the server went on."""
    import select
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)

    def upstream(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            _drip_whoami(tls)

    def proxy_handler(conn: socket.socket) -> None:
        tls = context.wrap_socket(conn, server_side=True)  # the proxy itself speaks TLS
        head = read_head(tls)
        if not head:
            return
        assert head.startswith(b"CONNECT 127.0.0.1:%d " % api.port)
        target = socket.create_connection(("127.0.0.1", api.port))
        proxy.track(target)
        tls.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        # One thread relays both ways: an SSL socket must not be read and written from two threads.
        until = time.monotonic() + 30
        while time.monotonic() < until:
            ready = [tls] if tls.pending() else select.select([tls, target], [], [], 0.5)[0]
            for side in ready:
                data = side.recv(65536)
                if not data:
                    return
                (target if side is tls else tls).sendall(data)

    api = LoopbackServer(upstream, max_seconds=60)
    proxy = LoopbackServer(proxy_handler, max_seconds=60)
    try:
        _assert_whoami_bounded_through(
            monkeypatch, "HTTPS_PROXY", f"https://127.0.0.1:{proxy.port}", f"https://127.0.0.1:{api.port}"
        )
        assert proxy.accepted == 1
    finally:
        proxy.close()
        api.close()


# ---------------------------------------------------------------- class 4: TLS failures after the handshake


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 that the hook trusts (``REQUESTS_CA_BUNDLE``).

    Made by the benchmarks' helper (``benchmarks/_certificate.py``), loaded from its file so that the
    benchmark scripts do not join ``sys.path`` for the rest of the session.
    """
    spec = importlib.util.spec_from_file_location("_bctrl_bench_certificate", BENCHMARKS / "_certificate.py")
    assert spec is not None
    assert spec.loader is not None
    certificate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(certificate)

    cert_file, key_file = certificate.loopback_certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    return cert_file, key_file


def test_a_tls_connection_dropped_mid_upload_is_uncertain_not_a_failed_handshake(
    tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The server completes the handshake, reads the request's first bytes and closes. The write then
    fails with "EOF occurred in violation of protocol", a text the handshake also produces: the
    upload was reported as "TLS handshake … failed … Nothing was sent" although its head went out."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)

    def handle(conn: socket.socket) -> None:
        tls = context.wrap_socket(conn, server_side=True)
        tls.recv(100)
        conn.close()

    server = LoopbackServer(handle, max_seconds=60)
    try:
        _use(monkeypatch, f"https://127.0.0.1:{server.port}")
        source = tmp_path / "big.bin"
        source.write_bytes(b"x" * (8 * 1024 * 1024))
        with pytest.raises(BctrlUncertainTransportError) as caught:
            BctrlHook(timeout=5, max_retries=2, max_retry_wait=0.1).upload_file("rt-1", source)
        assert "handshake" not in str(caught.value)
        assert "Nothing was sent" not in str(caught.value)
        assert server.accepted == 1
    finally:
        server.close()


# ---------------------------------------------------------------- class 6: giant strings in an error answer


def test_a_giant_error_text_is_clipped_in_the_message_and_kept_whole_in_the_attributes(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    """A 10 MB ``error`` and a 1 MB ``hint`` made an 11 MB exception message, and so an 11 MB log line."""
    envelope = {"code": "x.y", "error": "E" * 10_000_000, "hint": "H" * 1_000_000 + KEY}

    def handle(conn: socket.socket) -> None:
        read_request(conn)
        body = json.dumps(envelope).encode()
        conn.sendall(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        time.sleep(0.3)

    raw_server(handle)
    with pytest.raises(BctrlInvalidRequestError) as caught:
        BctrlHook(timeout=5, max_retries=0).get_file("f-1")
    error = caught.value
    assert len(str(error)) < 10_000
    assert "more characters" in str(error)
    assert error.error == envelope["error"]
    assert error.hint == "H" * 1_000_000 + "***"
