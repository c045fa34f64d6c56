"""A local BCTRL emulator: a real HTTP server on loopback that speaks the BCTRL file API.

Use it to test DAGs and the hook offline::

    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

    with BctrlEmulator(api_key="bctrl_local") as emu:
        runtime_id = emu.create_runtime()
        os.environ["AIRFLOW_CONN_BCTRL_DEFAULT"] = emu.airflow_connection_json()
        ...

or from a shell::

    BCTRL_EMULATOR_API_KEY=bctrl_local python -m airflow_provider_bctrl.testing.emulator --port 8787

See ``docs/emulator.md`` for the model, the endpoints, the control API and fault injection.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from airflow_provider_bctrl.testing._emulator_app import API_KEY_ENV, DEFAULT_API_KEY, EmulatorApp, create_app
from airflow_provider_bctrl.testing._emulator_connections import ConnectionRegistry, tracking_protocol
from airflow_provider_bctrl.testing._wait import poll
from airflow_provider_bctrl.testing.client import EmulatorClient, EmulatorClientError

__all__ = ["BctrlEmulator", "EmulatorError", "create_app", "main"]

log = logging.getLogger(__name__)

#: The port of BCTRL's local development gateway, the CLI's default.
DEFAULT_PORT = 8787
#: The line printed on stdout once the server accepts requests (parents parse it for the port).
READY_LINE = "BCTRL emulator listening on {url} (space {space_id})"
_READY_PATTERN = re.compile(r"BCTRL emulator listening on (?P<url>http://\S+) \(space (?P<space>[^)]+)\)")

#: Seconds a control-API call may wait for the server.
_CONTROL_TIMEOUT = 60.0
#: How long stop() waits for a graceful shutdown before forcing it.
_STOP_GRACE_SECONDS = 10.0
_POLL_INTERVAL = 0.05


class EmulatorError(EmulatorClientError):
    """The emulator failed to start, or a control-API call was answered with an error."""


# --------------------------------------------------------------------------------------- server


class _Server(uvicorn.Server):
    """uvicorn's server with a ready callback and signal handling that ends the process cleanly."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after a graceful shutdown, so the process would die "killed by
        # SIGTERM"; the emulator treats SIGTERM/SIGINT as a normal request to stop and exits 0 instead.
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_exit(signum: int, frame: object) -> None:
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True  # a second Ctrl+C stops waiting for open connections
            self.should_exit = True

        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, request_exit) for signum in handled}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server_config(
    app: EmulatorApp, connections: ConnectionRegistry, *, log_level: str, access_log: bool
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=tracking_protocol(connections),
        ws="none",
        lifespan="on",
        log_level=log_level,
        # The host process (pytest, Airflow) owns logging; uvicorn must not reconfigure it.
        log_config=None,
        access_log=access_log,
        limit_concurrency=128,
        # Longer than requests' idle pooling, so a reused connection is rarely closed under a client.
        timeout_keep_alive=60,
        timeout_graceful_shutdown=5,
        server_header=False,
    )


# ------------------------------------------------------------------------------------ the handle


class BctrlEmulator(EmulatorClient):
    """A running local BCTRL emulator, in this process or in a child process.

    Its control methods (``create_runtime``, ``write_runtime_file``, ``stored_files``, ``add_fault``,
    ``requests_log``, ...) are :class:`~airflow_provider_bctrl.testing.client.EmulatorClient`'s, aimed
    at the server it started; they raise :class:`EmulatorError`.

    :param api_key: the Bearer key the emulator accepts.
    :param data_dir: state directory; reused if it exists (a restart keeps files, runtimes and the
        default space). ``None``: a temporary directory, removed again by :meth:`stop`.
    :param space_id: the default space id; default the one persisted in ``data_dir``, else a uuid4.
    :param host: interface to listen on (keep it on loopback).
    :param port: TCP port; 0 picks a free one (see :attr:`url`).
    :param in_process: ``True`` runs uvicorn in a daemon thread of this process (fast, for tests);
        ``False`` runs ``python -m airflow_provider_bctrl.testing.emulator`` in a child process in its own
        process group (for memory measurements and demos).
    :param startup_timeout: seconds to wait for the server to answer its health check.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    _error = EmulatorError

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        data_dir: str | os.PathLike[str] | None = None,
        space_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        in_process: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string.")
        # The client's state; its base_url is the server's url once start() knows it.
        self._init_client("", api_key=api_key, timeout=_CONTROL_TIMEOUT)
        self._own_data_dir = data_dir is None
        self.data_dir = (
            Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="bctrl-emulator-"))
        )
        self.space_id: str = space_id or ""
        self._requested_space_id = space_id
        self.host = host
        self.port = port
        self.in_process = in_process
        self.startup_timeout = startup_timeout
        self.url = ""
        self.pid: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None
        self._started = False

    def __repr__(self) -> str:
        mode = "in-process" if self.in_process else f"pid {self.pid}"
        return f"<BctrlEmulator {self.url or 'stopped'} ({mode})>"

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> BctrlEmulator:
        """Start the server and wait until it answers; returns ``self``."""
        if self._started:
            return self
        try:
            if self.in_process:
                self._start_thread()
            else:
                self._start_process()
            self.base_url = self.url
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _start_thread(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        connections = ConnectionRegistry()
        app = create_app(
            api_key=self.api_key,
            data_dir=self.data_dir,
            space_id=self._requested_space_id,
            connections=connections,
        )
        self.space_id = app.store.default_space_id
        self._socket = _bind(self.host, self.port)
        self.url = _url_for(self._socket)
        self._server = _Server(_server_config(app, connections, log_level="warning", access_log=False))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="bctrl-emulator", daemon=True
        )
        self._thread.start()

    def _start_process(self) -> None:
        self._log_dir = Path(tempfile.mkdtemp(prefix="bctrl-emulator-logs-"))
        stdout_path, stderr_path = self._log_dir / "stdout.log", self._log_dir / "stderr.log"
        command = [
            sys.executable,
            "-m",
            "airflow_provider_bctrl.testing.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        if self._requested_space_id:
            command += ["--space-id", self._requested_space_id]
        # The key travels in the environment: a command line is readable by every local user (ps).
        env = {**os.environ, API_KEY_ENV: self.api_key}
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        self.pid = self._process.pid
        process = self._process

        def ready() -> re.Match[str] | None:
            if process.poll() is not None:
                raise EmulatorError(
                    f"The emulator process exited with code {process.returncode} before it was ready.\n"
                    f"{self._stderr_tail()}"
                )
            return _READY_PATTERN.search(stdout_path.read_text(encoding="utf-8", errors="replace"))

        try:
            match = poll("the ready line", ready, timeout=self.startup_timeout, interval=_POLL_INTERVAL)
        except TimeoutError:
            raise EmulatorError(
                f"The emulator process did not report ready within {self.startup_timeout}s.\n{self._stderr_tail()}"
            ) from None
        self.url = match.group("url")
        self.space_id = match.group("space")

    def _stderr_tail(self, chars: int = 4000) -> str:
        if self._log_dir is None:
            return ""
        try:
            text = (self._log_dir / "stderr.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return f"--- emulator stderr (last {chars} chars) ---\n{text[-chars:]}"

    def _wait_healthy(self) -> None:
        def healthy() -> bool | None:
            if self._thread is not None and not self._thread.is_alive():
                raise EmulatorError("The emulator server thread stopped during start-up (see the log).")
            if self._process is not None and self._process.poll() is not None:
                raise EmulatorError(f"The emulator process exited during start-up.\n{self._stderr_tail()}")
            return self.health() or None

        try:
            poll("a healthy emulator", healthy, timeout=self.startup_timeout, interval=_POLL_INTERVAL)
        except TimeoutError:
            raise EmulatorError(
                f"The emulator at {self.url} did not become healthy within {self.startup_timeout}s.\n"
                f"{self._stderr_tail()}"
            ) from None

    def stop(self) -> None:
        """Stop the server; safe to call more than once and after a failed start."""
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(_STOP_GRACE_SECONDS)
                if self._thread.is_alive():
                    self._server.force_exit = True
                    self._thread.join(_STOP_GRACE_SECONDS)
                    if self._thread.is_alive():
                        log.warning(
                            "The emulator thread did not stop; it is a daemon and dies with the process."
                        )
            self._server = None
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None:
            _terminate_group(self._process)
            self._process = None
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self._started = False

    def __enter__(self) -> BctrlEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, method: str, path: str, **kwargs: Any) -> bytes:
        if self._server is None and self._process is None:
            raise EmulatorError("The emulator is not running; call start() first.")
        return super()._call(method, path, **kwargs)


def _terminate_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, wait a bounded time, then SIGKILL it."""
    for signum, wait in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, _STOP_GRACE_SECONDS)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure nothing else it started in the group survives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    log.warning("Emulator process %s did not exit after SIGKILL.", process.pid)


# ------------------------------------------------------------------------------------------- CLI


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_bctrl.testing.emulator",
        description="Run the local BCTRL emulator (the BCTRL file API on loopback, for offline tests).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for a free one (default: 8787)"
    )
    parser.add_argument(
        "--data-dir", help="state directory, reused across restarts (default: a temporary dir)"
    )
    parser.add_argument(
        "--api-key",
        help=f"accepted API key (default: ${API_KEY_ENV}, else {DEFAULT_API_KEY}); "
        "prefer the environment variable, a command line is visible to other users",
    )
    parser.add_argument("--space-id", help="default space id (default: the persisted one, else a new uuid4)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level on stderr (default: info); debug also logs every request",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; print the ready line on stdout. Returns the exit code."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
    temporary = args.data_dir is None
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bctrl-emulator-"))
    try:
        try:
            sock = _bind(args.host, args.port)
        except OSError as exc:
            sys.stderr.write(f"Cannot listen on {args.host}:{args.port}: {exc}\n")
            return 1
        url = _url_for(sock)
        connections = ConnectionRegistry()
        app = create_app(api_key=api_key, data_dir=data_dir, space_id=args.space_id, connections=connections)
        log.info("Data directory: %s", data_dir)

        def announce() -> None:
            sys.stdout.write(READY_LINE.format(url=url, space_id=app.store.default_space_id) + "\n")
            sys.stdout.flush()

        config = _server_config(
            app, connections, log_level=args.log_level, access_log=args.log_level == "debug"
        )
        server = _Server(config, on_ready=announce)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
        return 0 if server.started else 1
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
