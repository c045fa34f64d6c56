"""A small client for the control API of a local BCTRL emulator that is already running.

:class:`EmulatorClient` does what the emulator's ``/_emulator`` endpoints offer: create runtimes, write
files into a runtime "as the browser would", read the durable store and the run artifacts, queue faults
and read the request log. Use it from a test, a DAG's set-up task or a shell, against an emulator
started elsewhere (``make emulator``, ``python -m airflow_provider_bctrl.testing.emulator``, the
``bctrl_emulator`` pytest fixture)::

    from airflow_provider_bctrl.testing.client import EmulatorClient

    client = EmulatorClient("http://127.0.0.1:8787")
    runtime_id = client.create_runtime()
    client.write_runtime_file(runtime_id, "/tmp/runtime/output/results.json", b'{"ok": true}')

or from a shell (``--help`` lists the commands)::

    RT=$(python -m airflow_provider_bctrl.testing.client create-runtime)

It uses only the standard library (``urllib``), so importing it costs nothing and it works in any
Airflow worker. It never talks to anything but the URL it is given, and never through a proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow_provider_bctrl.testing._emulator_faults import FAULT_ROUTES
from airflow_provider_bctrl.testing._wait import poll

__all__ = ["EmulatorClient", "EmulatorClientError", "default_url", "main"]

#: The emulator's URL when neither an argument nor ``$BCTRL_EMULATOR_URL`` names one.
DEFAULT_URL = "http://127.0.0.1:8787"
#: Environment: the emulator's URL, or only its port on 127.0.0.1 (what ``make emulator`` uses).
URL_ENV = "BCTRL_EMULATOR_URL"
PORT_ENV = "BCTRL_EMULATOR_PORT"
#: Environment: the key the emulator accepts (the same variable the emulator reads).
API_KEY_ENV = "BCTRL_EMULATOR_API_KEY"
#: The emulator's built-in key when none is configured (a loopback test server's key, not a secret).
DEFAULT_API_KEY = "bctrl_emulator_key"
#: Seconds a control call may wait for the emulator (it answers at once unless it is busy).
DEFAULT_TIMEOUT = 30.0
#: Seconds one health check may wait: a probe, repeated by wait_until_healthy.
_HEALTH_TIMEOUT = 5.0


class EmulatorClientError(RuntimeError):
    """The emulator could not be reached, or it answered a control call with an error.

    :ivar status: the HTTP status, or ``None`` when there was no HTTP answer.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_url() -> str:
    """``$BCTRL_EMULATOR_URL``, else ``http://127.0.0.1:$BCTRL_EMULATOR_PORT``, else port 8787."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        return url
    port = os.environ.get(PORT_ENV, "").strip()
    return f"http://127.0.0.1:{port}" if port else DEFAULT_URL


class EmulatorClient:
    """The control API of a running BCTRL emulator (``/_emulator/...``; see ``docs/emulator.md``).

    :param base_url: the emulator's URL, e.g. ``http://127.0.0.1:8787`` (no path). Default:
        :func:`default_url` (``$BCTRL_EMULATOR_URL``, ``$BCTRL_EMULATOR_PORT``, else port 8787).
    :param api_key: the key the emulator accepts, used only by :meth:`airflow_connection_json`
        (the control API needs none). Default: ``$BCTRL_EMULATOR_API_KEY``, else the emulator's
        built-in key.
    :param timeout: seconds each call may wait for an answer.

    :class:`~airflow_provider_bctrl.testing.emulator.BctrlEmulator` inherits every method from here,
    aimed at the server it started.
    """

    #: What a failed call raises (BctrlEmulator raises its subclass, ``EmulatorError``).
    _error: ClassVar[type[EmulatorClientError]] = EmulatorClientError

    def __init__(
        self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        url = (base_url or default_url()).strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ValueError(f"base_url must look like http://127.0.0.1:8787 (no path), got {url!r}.")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        api_key = api_key or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
        self._init_client(url, api_key=api_key, timeout=timeout)

    def _init_client(self, base_url: str, *, api_key: str, timeout: float) -> None:
        """Set the state every call reads, from checked values.

        :class:`~airflow_provider_bctrl.testing.emulator.BctrlEmulator` calls this instead of
        ``__init__``: it knows its ``base_url`` only once its ``start()`` has bound a port, so it
        passes ``""`` and ``start()`` sets the URL.
        """
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self._opener = direct_opener()

    def __repr__(self) -> str:
        return f"<EmulatorClient {self.base_url}>"

    # ---------------------------------------------------------------------------------- plumbing

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        json_body: Any = None,
        expect: Sequence[int] = (200,),
        timeout: float | None = None,
    ) -> bytes:
        url = f"{self.base_url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout or self.timeout) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise self._error(
                f"Cannot reach the BCTRL emulator at {self.base_url} ({reason}). Is it running? "
                "Start it with `make emulator` or `python -m airflow_provider_bctrl.testing.emulator`."
            ) from None
        if status not in expect:
            raise self._error(f"{method} {path} answered {status}: {_error_text(data)}", status=status)
        return data

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        data = self._call(method, path, **kwargs)
        try:
            return json.loads(data)
        except ValueError:
            raise self._error(f"{method} {path} did not answer JSON: {data[:200]!r}") from None

    def _data(self, path: str) -> list[dict[str, Any]]:
        document = self._json("GET", path)
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise self._error(f"GET {path} answered without a 'data' list.")
        return data

    # ------------------------------------------------------------------------------- the server

    def health(self) -> bool:
        """Whether the emulator answers its health check (``False`` when it cannot be reached)."""
        try:
            document = self._json("GET", "/_emulator/health", timeout=min(self.timeout, _HEALTH_TIMEOUT))
        except EmulatorClientError:
            return False
        return isinstance(document, dict) and document.get("status") == "ok"

    def wait_until_healthy(self, timeout: float = 30.0, interval: float = 0.1) -> None:
        """Wait until the emulator answers its health check, at most ``timeout`` seconds.

        :raises EmulatorClientError: when it has not answered in time.
        """
        try:
            poll("the emulator", lambda: self.health() or None, timeout=timeout, interval=interval)
        except TimeoutError:
            raise self._error(
                f"The BCTRL emulator at {self.base_url} did not answer within {timeout} s."
            ) from None

    def info(self) -> dict[str, Any]:
        """``{"defaultSpaceId", "dataDir"}`` of the running emulator."""
        document: dict[str, Any] = self._json("GET", "/_emulator/info")
        return document

    @property
    def default_space_id(self) -> str:
        """The emulator's default space (what ``whoami`` answers as ``defaultSpaceId``)."""
        return str(self.info()["defaultSpaceId"])

    def airflow_connection_json(self, extra: Mapping[str, Any] | None = None) -> str:
        """JSON for ``AIRFLOW_CONN_<ID>`` pointing at this emulator (with ``extra`` only when given)."""
        connection: dict[str, Any] = {"conn_type": "bctrl", "host": self.base_url, "password": self.api_key}
        if extra is not None:
            connection["extra"] = dict(extra)
        return json.dumps(connection)

    # --------------------------------------------------------------------------- runtimes, files

    def create_runtime(
        self, runtime_id: str | None = None, space_id: str | None = None, *, active: bool = True
    ) -> str:
        """Create a runtime and return its id (in the default space unless ``space_id``, created if new).

        :param runtime_id: choose the id (letters, digits, ``_``, ``.``, ``-``); default: a new uuid.
        :param space_id: the space it belongs to; default: the emulator's default space.
        :param active: created running, with a run, as if someone had started it; ``False`` creates
            it stopped, for a DAG that starts it with ``BctrlStartRuntimeOperator``.
        """
        body: dict[str, Any] = {
            key: value for key, value in (("runtimeId", runtime_id), ("spaceId", space_id)) if value
        }
        body["status"] = "active" if active else "stopped"
        document = self._json("POST", "/_emulator/runtimes", json_body=body, expect=(201,))
        return str(document["runtimeId"])

    def runtimes(self) -> list[dict[str, Any]]:
        """Every runtime the emulator knows."""
        return self._data("/_emulator/runtimes")

    def runtime(self, runtime_id: str) -> dict[str, Any]:
        """One runtime's record: ``runtimeId``, ``spaceId``, ``status``, ``runId``, ``activeRunId``."""
        for record in self.runtimes():
            if record["runtimeId"] == runtime_id:
                return dict(record)
        raise self._error(f"No runtime {runtime_id!r} in the emulator.", status=404)

    def write_runtime_file(self, runtime_id: str, path: str, data: bytes | str) -> dict[str, Any]:
        """Put ``data`` at ``path`` inside a runtime, as if the browser had produced it.

        :param path: absolute inside the runtime (``/tmp/runtime/output/results.json``) or relative to
            its workspace.
        :param data: the bytes; a ``str`` is written as UTF-8.
        :return: ``{"path", "sizeBytes"}``.
        """
        payload = data.encode() if isinstance(data, str) else bytes(data)
        document: dict[str, Any] = self._json(
            "PUT",
            f"/_emulator/runtimes/{_segment(runtime_id)}/fs",
            query={"path": path},
            body=payload,
            expect=(201,),
        )
        return document

    def write_runtime_file_later(
        self, runtime_id: str, path: str, data: bytes | str, *, delay_seconds: float
    ) -> dict[str, Any]:
        """Make ``data`` appear at ``path`` in a runtime ``delay_seconds`` from now (a browser finishing).

        Returns at once with ``{"path", "sizeBytes", "delaySeconds"}``; the file lands later.
        """
        payload = data.encode() if isinstance(data, str) else bytes(data)
        document: dict[str, Any] = self._json(
            "POST",
            f"/_emulator/runtimes/{_segment(runtime_id)}/fs/later",
            query={"path": path, "delay": str(delay_seconds)},
            body=payload,
            expect=(202,),
        )
        return document

    def read_runtime_file(self, runtime_id: str, path: str) -> bytes:
        """The bytes at ``path`` inside a runtime (e.g. what an upload materialised there)."""
        return self._call("GET", f"/_emulator/runtimes/{_segment(runtime_id)}/fs", query={"path": path})

    def stored_files(self) -> list[dict[str, Any]]:
        """Every durable file: ``id``, ``name``, ``path``, ``spaceId``, ``sizeBytes``, ``sha256``, ``source``, ..."""
        return self._data("/_emulator/files")

    def artifacts(self) -> list[dict[str, Any]]:
        """Every run artifact recorded by collect."""
        return self._data("/_emulator/artifacts")

    # ---------------------------------------------------------------------------- faults and log

    def add_fault(
        self,
        route: str,
        count: int = 1,
        *,
        status: int | None = None,
        retry_after: str | None = None,
        delay_seconds: float | None = None,
        drop: bool = False,
        after: str = "request",
    ) -> list[dict[str, Any]]:
        """Queue a fault for the next ``count`` ``/v1`` requests to ``route``; returns the pending faults.

        :param route: one of :data:`FAULT_ROUTES`: ``upload``, ``collect``, ``stage``, ``whoami``,
            ``content``, ``file``, ``list``, ``start``, ``stop``, ``runtime``, or ``*`` for all.
        :param status: answer this HTTP error status (400-599) with BCTRL's error envelope.
        :param retry_after: the ``Retry-After`` value sent with ``status`` (seconds or an HTTP date).
        :param delay_seconds: wait this long first (alone: a slow but normal answer).
        :param drop: reset the connection without an HTTP answer.
        :param after: ``"request"`` (fail before acting) or ``"processing"`` (act fully, then fail).
        """
        if route not in FAULT_ROUTES:
            raise ValueError(f"route must be one of {', '.join(FAULT_ROUTES)}, got {route!r}.")
        body: dict[str, Any] = {"route": route, "count": count, "drop": drop, "after": after}
        if status is not None:
            body["status"] = status
        if retry_after is not None:
            body["retryAfter"] = retry_after
        if delay_seconds is not None:
            body["delaySeconds"] = delay_seconds
        document = self._json("POST", "/_emulator/faults", json_body=body, expect=(201,))
        pending: list[dict[str, Any]] = document["data"]
        return pending

    def faults(self) -> list[dict[str, Any]]:
        """The faults still pending, oldest first."""
        return self._data("/_emulator/faults")

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._call("DELETE", "/_emulator/faults", expect=(204,))

    def requests_log(self) -> list[dict[str, Any]]:
        """The ``/v1`` requests the emulator received, oldest first (never their Authorization header)."""
        return self._data("/_emulator/requests")

    def clear_requests_log(self) -> None:
        """Forget the recorded requests."""
        self._call("DELETE", "/_emulator/requests", expect=(204,))


def direct_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that ignores proxies from the environment: the emulator is local."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _segment(value: str) -> str:
    """One URL path segment, quoted (``/`` included), refusing empty and dot segments."""
    if not isinstance(value, str) or value in ("", ".", ".."):
        raise ValueError(f"not a usable id: {value!r}")
    return urllib.parse.quote(value, safe="")


def _error_text(data: bytes) -> str:
    """The emulator's error message (its JSON envelope's ``code: error``), else the start of the body."""
    try:
        document = json.loads(data)
    except ValueError:
        return data[:300].decode("utf-8", "replace") or "(empty body)"
    if isinstance(document, dict) and "error" in document:
        return f"{document.get('code')}: {document['error']}"
    return json.dumps(document)[:300]


# ------------------------------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_bctrl.testing.client",
        description="Talk to the control API of a running local BCTRL emulator.",
    )
    parser.add_argument(
        "--url", default=None, help=f"the emulator's URL (default: ${URL_ENV}, else {DEFAULT_URL})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("health", help="exit 0 when the emulator answers, 1 when it does not")
    wait = commands.add_parser("wait", help="wait until the emulator answers (exit 1 after --timeout)")
    wait.add_argument("--timeout", type=float, default=30.0, help="seconds (default: 30)")
    commands.add_parser(
        "connection", help="print the AIRFLOW_CONN_BCTRL_DEFAULT value that points at the emulator"
    )
    runtime = commands.add_parser("create-runtime", help="create a runtime; print its id")
    runtime.add_argument("--runtime-id", help="choose the id (default: a new uuid)")
    runtime.add_argument("--space-id", help="its space (default: the emulator's default space)")
    runtime.add_argument("--stopped", action="store_true", help="create it stopped (default: running)")
    write = commands.add_parser("write-file", help="put a file into a runtime as the browser would")
    write.add_argument("runtime_id")
    write.add_argument("path", help="absolute in the runtime (/tmp/out.json) or workspace-relative")
    source = write.add_mutually_exclusive_group()
    source.add_argument("--data", help="the file's text (default: read the bytes from stdin)")
    source.add_argument("--from-file", help="copy the bytes of this local file")
    read = commands.add_parser("read-file", help="print the bytes of a file inside a runtime")
    read.add_argument("runtime_id")
    read.add_argument("path")
    commands.add_parser("files", help="print every durable file as JSON")
    commands.add_parser("artifacts", help="print every run artifact as JSON")
    commands.add_parser("requests", help="print the request log as JSON")
    fault = commands.add_parser("add-fault", help="queue a fault, e.g. add-fault upload --status 503")
    fault.add_argument("route", choices=FAULT_ROUTES)
    fault.add_argument("--count", type=int, default=1)
    fault.add_argument("--status", type=int)
    fault.add_argument("--retry-after")
    fault.add_argument("--delay-seconds", type=float)
    fault.add_argument("--drop", action="store_true")
    fault.add_argument("--after", choices=("request", "processing"), default="request")
    commands.add_parser("clear-faults", help="drop every pending fault")
    return parser.parse_args(argv)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one client command (``--help`` lists them); returns the exit code."""
    args = _parse_args(argv)
    client = EmulatorClient(args.url)
    try:
        if args.command == "health":
            return 0 if client.health() else 1
        if args.command == "wait":
            client.wait_until_healthy(args.timeout)
        elif args.command == "connection":
            _out(client.airflow_connection_json())
        elif args.command == "create-runtime":
            _out(client.create_runtime(args.runtime_id, args.space_id, active=not args.stopped))
        elif args.command == "write-file":
            if args.data is not None:
                data: bytes = args.data.encode()
            elif args.from_file is not None:
                with open(args.from_file, "rb") as handle:
                    data = handle.read()
            else:
                data = sys.stdin.buffer.read()
            _out(json.dumps(client.write_runtime_file(args.runtime_id, args.path, data)))
        elif args.command == "read-file":
            sys.stdout.buffer.write(client.read_runtime_file(args.runtime_id, args.path))
            sys.stdout.flush()
        elif args.command in ("files", "artifacts", "requests"):
            listing = {
                "files": client.stored_files,
                "artifacts": client.artifacts,
                "requests": client.requests_log,
            }[args.command]()
            _out(json.dumps(listing, indent=2))
        elif args.command == "add-fault":
            pending = client.add_fault(
                args.route,
                args.count,
                status=args.status,
                retry_after=args.retry_after,
                delay_seconds=args.delay_seconds,
                drop=args.drop,
                after=args.after,
            )
            _out(json.dumps(pending, indent=2))
        elif args.command == "clear-faults":
            client.clear_faults()
    except EmulatorClientError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
