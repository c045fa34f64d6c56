"""``BctrlHook.test_connection()`` (the Test button) and ``airflow connections test``: every outcome.

Each failure must say which kind it is (wrong key, forbidden, unreachable, timeout, not a BCTRL API)
and must never contain the API key. The servers are real: the emulator (with fault injection) and
small fakes on loopback — a web server that answers HTML, a port where nothing listens, and a socket
that accepts connections but never answers.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from _airflow_env import AIRFLOW_BIN, airflow_env

from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_3_PLUS

#: The key of this module's own emulators and of the fakes (which accept anything).
KEY = "bctrl_tc_Hh5secretRr27"
WRONG_KEY = "bctrl_wrong_Zp4secretQq81"  # made up: the emulators reject it
#: Timeout (seconds) of the connections whose server is slow or silent; keeps the tests short.
SHORT_TIMEOUT = 1


# ------------------------------------------------------------------------------ fake servers


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with an HTML page, like a web site or a proxy's error page would.

    ``status`` and whether the page echoes the request headers (as some debugging proxies do) are
    set on the server object.
    """

    def do_GET(self) -> None:
        status: int = getattr(self.server, "status", 200)
        echo: bool = getattr(self.server, "echo_headers", False)
        text = "<html><body><h1>Hello</h1>"
        if echo:
            # Authorization first, so it falls inside the snippet the hook quotes from error pages.
            headers = sorted(self.headers.items(), key=lambda item: item[0].lower() != "authorization")
            text += "<pre>" + "".join(f"{k}: {v}\n" for k, v in headers) + "</pre>"
        body = (text + "</body></html>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


class _JsonHandler(_HtmlHandler):
    """Answers every GET with ``200 {}``: JSON, but not a whoami document."""

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class FakeServers:
    """URLs of the loopback fakes a module's tests share."""

    html: str
    html_404_echo: str
    html_502: str
    json_not_whoami: str
    refused: str
    silent: str


def _serve(
    handler: type[http.server.BaseHTTPRequestHandler], **attrs: Any
) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in attrs.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, name=f"fake-{handler.__name__}", daemon=True).start()
    return server


@pytest.fixture(scope="module")
def fakes() -> Iterator[FakeServers]:
    """Start the fakes once per module; close every socket afterwards."""
    html = _serve(_HtmlHandler)
    html_404 = _serve(_HtmlHandler, status=404, echo_headers=True)
    html_502 = _serve(_HtmlHandler, status=502)  # a load balancer in front of an outage
    not_whoami = _serve(_JsonHandler)
    # Bound but not listening: the kernel refuses connections, and no other process can take the port.
    refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    refused.bind(("127.0.0.1", 0))
    # Listening but never accepting: the TCP handshake completes (backlog), no byte ever comes back.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        yield FakeServers(
            html=f"http://127.0.0.1:{html.server_address[1]}",
            html_404_echo=f"http://127.0.0.1:{html_404.server_address[1]}",
            html_502=f"http://127.0.0.1:{html_502.server_address[1]}",
            json_not_whoami=f"http://127.0.0.1:{not_whoami.server_address[1]}",
            refused=f"http://127.0.0.1:{refused.getsockname()[1]}",
            silent=f"http://127.0.0.1:{silent.getsockname()[1]}",
        )
    finally:
        for server in (html, html_404, html_502, not_whoami):
            server.shutdown()
            server.server_close()
        refused.close()
        silent.close()


def _conn_json(host: str, key: str | None = KEY, **extra: Any) -> str:
    conn: dict[str, Any] = {"conn_type": "bctrl", "host": host}
    if key is not None:
        conn["password"] = key
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def _test(monkeypatch: pytest.MonkeyPatch, conn_json: str) -> tuple[bool, str, float]:
    """Run test_connection() on a connection given as JSON; returns status, message and seconds taken."""
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_TC", conn_json)
    started = time.monotonic()
    ok, message = BctrlHook("bctrl_tc").test_connection()
    return ok, message, time.monotonic() - started


def _whoami(emu: BctrlEmulator) -> dict[str, Any]:
    response = requests.get(
        f"{emu.url}/v1/auth/whoami", headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10
    )
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def _assert_no_key(text: str, *keys: str) -> None:
    for key in (KEY, WRONG_KEY, *keys):
        assert key not in text


# ------------------------------------------------------------------------ the hook, in process


def test_success_names_organisation_and_default_space(
    emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = _whoami(emu)
    ok, message, _ = _test(monkeypatch, emu.airflow_connection_json())
    assert ok is True
    assert message == (
        f"Connected to BCTRL at {emu.url}: organisation {who['organizationId']}, "
        f"default space {emu.space_id}."
    )
    _assert_no_key(message, emu.api_key)


def test_success_uses_one_whoami_get_only(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.clear_requests_log()
    assert _test(monkeypatch, emu.airflow_connection_json())[0] is True
    assert [(r["method"], r["path"]) for r in emu.requests_log()] == [("GET", "/v1/auth/whoami")]


def test_wrong_key_is_a_401(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message, _ = _test(monkeypatch, _conn_json(emu.url, WRONG_KEY))
    assert ok is False
    assert message.startswith("BCTRL rejected the API key (401 ")
    assert "check the API key field" in message
    _assert_no_key(message, emu.api_key)


def test_missing_key_is_named_before_any_request(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.clear_requests_log()
    ok, message, _ = _test(monkeypatch, _conn_json(emu.url, key=None))
    assert ok is False
    assert "has no API key" in message
    assert emu.requests_log() == []


def test_forbidden_is_a_403(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.add_fault("whoami", status=403)
    ok, message, _ = _test(monkeypatch, emu.airflow_connection_json())
    assert ok is False
    assert message.startswith("The API key is not allowed to use this API (403 ")
    _assert_no_key(message, emu.api_key)


def test_nothing_listening_is_host_unreachable(fakes: FakeServers, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message, seconds = _test(monkeypatch, _conn_json(fakes.refused))
    assert ok is False
    assert message.startswith("Host unreachable: ")
    assert "connection refused" in message
    assert fakes.refused in message
    assert seconds < 15  # refused at once, never retried: far below any timeout even on a busy machine
    _assert_no_key(message)


def test_unknown_host_name_is_host_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    # ".invalid" never resolves (RFC 2606), so this needs no network.
    ok, message, _ = _test(monkeypatch, _conn_json("https://bctrl.invalid"))
    assert ok is False
    assert message.startswith("Host unreachable: ")
    _assert_no_key(message)


def test_slow_emulator_is_a_timeout_bounded_by_the_connection_timeout(
    emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.add_fault("whoami", delay_seconds=10)
    ok, message, seconds = _test(monkeypatch, emu.airflow_connection_json({"timeout": SHORT_TIMEOUT}))
    assert ok is False
    assert message.startswith("Timed out: ")
    assert f"did not answer within {SHORT_TIMEOUT} s" in message
    assert SHORT_TIMEOUT - 0.1 <= seconds < SHORT_TIMEOUT + 2, "one attempt, no retry"
    _assert_no_key(message, emu.api_key)


def test_server_that_never_answers_is_a_timeout(fakes: FakeServers, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message, seconds = _test(monkeypatch, _conn_json(fakes.silent, timeout=SHORT_TIMEOUT, max_retries=5))
    assert ok is False
    assert message.startswith("Timed out: ")
    assert seconds < SHORT_TIMEOUT + 2, "max_retries must not apply to the Test button"
    _assert_no_key(message)


@pytest.mark.parametrize(
    ("server", "prefix", "fragments"),
    [
        pytest.param("html", "Not a BCTRL API: ", ("text/html",), id="an HTML page is not a BCTRL API"),
        # The page quotes the request's Authorization header; the message must not pass the key on.
        pytest.param(
            "html_404_echo",
            "Not a BCTRL API: ",
            ("404", "Authorization: Bearer ***"),
            id="an HTML error page echoing the key is redacted",
        ),
        # A 502 in a load balancer's own HTML says BCTRL is down, not that the base URL is wrong.
        pytest.param(
            "html_502",
            "BCTRL is unavailable right now, try again later: BCTRL API 502",
            ("text/html",),
            id="a gateway error page is an outage, not a wrong URL",
        ),
        pytest.param(
            "json_not_whoami",
            "Not a BCTRL API: ",
            ("without an organisation or default space",),
            id="JSON that is not whoami is not a BCTRL API",
        ),
    ],
)
def test_a_server_that_is_not_the_bctrl_api_says_what_it_is(
    fakes: FakeServers, monkeypatch: pytest.MonkeyPatch, server: str, prefix: str, fragments: tuple[str, ...]
) -> None:
    ok, message, _ = _test(monkeypatch, _conn_json(getattr(fakes, server)))
    assert ok is False
    assert message.startswith(prefix), message
    for fragment in fragments:
        assert fragment in message, message
    _assert_no_key(message)


def test_dropped_connection_is_not_called_unreachable(
    emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu.add_fault("whoami", drop=True)
    ok, message, _ = _test(monkeypatch, emu.airflow_connection_json())
    assert ok is False
    assert message.startswith("Host reached, but it gave no valid HTTP answer: ")
    _assert_no_key(message, emu.api_key)


def test_retryable_status_is_not_retried(emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.add_fault("whoami", count=3, status=503)
    emu.clear_requests_log()
    ok, message, _ = _test(monkeypatch, emu.airflow_connection_json({"max_retries": 3}))
    assert ok is False
    assert message.startswith("BCTRL is unavailable right now, try again later: BCTRL API 503")
    assert len(emu.requests_log()) == 1
    _assert_no_key(message, emu.api_key)


def test_plain_http_to_a_remote_host_is_refused_without_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message, _ = _test(monkeypatch, _conn_json("http://bctrl.example.com"))
    assert ok is False
    assert "plain http://" in message
    assert "allow_insecure_http" in message


# ------------------------------------------------------------------- `airflow connections test`


@dataclass(frozen=True)
class CliCase:
    """One `airflow connections test` run: the connection, and what its output must show."""

    name: str
    conn_json: str
    expect_rc: int
    expect: tuple[str, ...]


@pytest.fixture(scope="module")
def cli_emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BctrlEmulator, ...]]:
    """Three emulators: healthy, answering 403, and too slow — so the CLI runs can go in parallel."""
    emulators = [
        BctrlEmulator(api_key=KEY, data_dir=tmp_path_factory.mktemp(f"cli-emulator-{i}")) for i in range(3)
    ]
    try:
        for emulator in emulators:
            emulator.start()
        emulators[1].add_fault("whoami", count=50, status=403)
        emulators[2].add_fault("whoami", count=50, delay_seconds=20)
        yield tuple(emulators)
    finally:
        for emulator in emulators:
            emulator.stop()


def _run_cli(case: CliCase, home: Path) -> subprocess.CompletedProcess[str]:
    env = airflow_env(
        home,
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW_CONN_BCTRL_CLI=case.conn_json,
        # Rich wraps the failure message at the terminal width; keep it on one line.
        COLUMNS="2000",
        NO_COLOR="1",
    )
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [AIRFLOW_BIN, "connections", "test", "-v", "bctrl_cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


#: ``airflow connections test`` exits 1 on a failed test from Airflow 3.3; 2.11-3.2 exit 0 and only print
#: "Connection failed!" (docs/installation.md: known differences).
FAILED_TEST_RC = 1 if AIRFLOW_V_3_3_PLUS else 0


@pytest.mark.slow
def test_cli_gives_the_same_answers(
    cli_emulators: tuple[BctrlEmulator, ...], fakes: FakeServers, tmp_path: Path
) -> None:
    """`airflow connections test <id>` reports the same outcome and message for every case."""
    healthy, forbidden, slow = cli_emulators
    who = _whoami(healthy)
    cases = [
        CliCase(
            "success",
            healthy.airflow_connection_json(),
            0,
            (
                "Connection success!",
                f"Connected to BCTRL at {healthy.url}: organisation {who['organizationId']}, "
                f"default space {healthy.space_id}.",
            ),
        ),
        CliCase(
            "wrong key",
            _conn_json(healthy.url, WRONG_KEY),
            FAILED_TEST_RC,
            ("Connection failed!", "rejected the API key (401"),
        ),
        CliCase(
            "forbidden",
            forbidden.airflow_connection_json(),
            FAILED_TEST_RC,
            ("Connection failed!", "The API key is not allowed to use this API (403 "),
        ),
        CliCase(
            "unreachable",
            _conn_json(fakes.refused),
            FAILED_TEST_RC,
            ("Connection failed!", "Host unreachable: ", "refused"),
        ),
        CliCase(
            "timeout",
            slow.airflow_connection_json({"timeout": SHORT_TIMEOUT}),
            FAILED_TEST_RC,
            ("Connection failed!", "Timed out: ", f"did not answer within {SHORT_TIMEOUT} s"),
        ),
        CliCase(
            "not bctrl",
            _conn_json(fakes.html),
            FAILED_TEST_RC,
            ("Connection failed!", "Not a BCTRL API: ", "text/html"),
        ),
    ]
    # Each run starts a fresh Airflow CLI (~5-10 s of imports on 2 cores); two at a time halves the wait.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: (c, _run_cli(c, tmp_path / c.name.replace(" ", "-"))), cases))
    failures = []
    for case, result in results:
        output = result.stdout + result.stderr
        flat = " ".join(output.split())
        problems = (
            [f"exit code {result.returncode} != {case.expect_rc}"]
            if result.returncode != case.expect_rc
            else []
        )
        problems += [f"missing {text!r}" for text in case.expect if " ".join(text.split()) not in flat]
        if KEY in output or WRONG_KEY in output:
            problems.append("the API key appears in the output")
        if problems:
            failures.append(f"[{case.name}] {'; '.join(problems)}\n--- output ---\n{output[-3000:]}")
    assert not failures, "\n\n".join(failures)
