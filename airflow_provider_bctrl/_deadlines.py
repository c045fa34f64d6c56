"""Bounds on slow answers: the read timeout limits each socket read, these limit a server that drips.

- The status line and headers must arrive within :data:`HEAD_FACTOR` x the read timeout after the
  request went out. A watchdog thread shuts the socket down when that passes (a blocked read cannot
  be interrupted another way); the connection classes of :class:`DeadlineAdapter` arm it.
- Bodies are read by :func:`read_body` in pieces as they arrive: a JSON answer must be complete within
  :data:`BODY_FACTOR` x the read timeout after its headers; a download must keep up at least
  :data:`LOW_SPEED_BYTES` bytes a second over every window of ``timeout`` seconds (curl's
  ``--speed-limit``/``--speed-time``). While a download arrives fast it is read in blocking reads of
  ``timeout`` x LOW_SPEED_BYTES bytes (16-64 KiB), each of which the watchdog bounds to ``timeout``
  seconds: fewer calls; a server that keeps the limit always passes, and one that pauses longer than
  ``timeout`` after a fast start is stopped at that pause.

The watchdog's one thread also runs the transfer log's timed lines (:func:`call_later`), so no request
starts a thread of its own.

Documented in ``docs/hook.md`` ("Timeouts").
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = [
    "BODY_FACTOR",
    "HEAD_FACTOR",
    "LOW_SPEED_BYTES",
    "PHASE_ATTRIBUTE",
    "AnswerTooSlow",
    "DeadlineAdapter",
    "call_later",
    "cancel",
    "read_body",
]

HEAD_FACTOR = 2
BODY_FACTOR = 2
LOW_SPEED_BYTES = 1024
#: Bodies are handed on in pieces of about this size (one write and one progress update each).
_READ_SIZE = 1024 * 1024
#: What one ``read1`` asks for. Over TLS a socket read brings one 16 KiB record whatever is asked,
#: and CPython's ``BufferedReader.read1(n)`` allocates ``n`` bytes per call before shrinking them:
#: asking for 1 MiB tripled a download's CPU time (3.5 s per GiB against 1.1 s at 64 KiB).
_PIECE_SIZE = 64 * 1024
#: Bulk reads only when one asks for at least a TLS record's worth (so a timeout of 16 s or more).
_BULK_MIN = 16 * 1024
#: At most this many pieces per list (a server sending tiny chunks must not exceed writev's IOV_MAX).
_MAX_PIECES = 256


class AnswerTooSlow(Exception):
    """The server kept sending, but too slowly for the deadlines above; the message says which."""


class _Watchdog:
    """One daemon thread that runs short actions when their deadlines pass.

    It shuts down sockets whose answers are late, and runs the transfer log's timed lines (see
    :func:`call_later`): one long-lived thread per process, none started per request.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._live: set[int] = set()
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], object]) -> int:
        """Run ``action`` on the watchdog thread in ``seconds`` unless disarmed first; return a token."""
        token = next(self._tokens)
        with self._cond:
            if len(self._heap) > 2 * len(self._live) + 64:
                # Disarmed deadlines stay in the heap until the thread reaches them; drop them in
                # bulk so a hook making many quick calls does not pile up entries (and sockets).
                self._heap = [entry for entry in self._heap if entry[1] in self._live]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (time.monotonic() + seconds, token, action))
            self._live.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bctrl-deadlines", daemon=True)
                self._thread.start()
            # The thread sleeps until the earliest deadline; only a new earliest one must wake it.
            # (Requests with one timeout arm ever later deadlines, so a busy hook never wakes it.)
            if self._heap[0][1] == token:
                self._cond.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Stop watching; return whether the deadline had already fired."""
        with self._cond:
            self._live.discard(token)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                when, token, action = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
                self._fired.add(token)
                # Outside the lock: an action may arm the next one (a repeating log line).
                self._cond.release()
                try:
                    action()
                except Exception:  # noqa: S110 - the thread must outlive a failing action (a broken log handler)
                    pass
                finally:
                    self._cond.acquire()

    def forget(self) -> None:
        """In a forked child: the parent's thread did not come along, nor are its deadlines ours."""
        self._cond = threading.Condition(threading.Lock())
        self._heap, self._live, self._fired, self._thread = [], set(), set(), None


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.forget)


def call_later(seconds: float, action: Callable[[], object]) -> int:
    """Run ``action`` on the watchdog thread after ``seconds``; return a token for :func:`cancel`.

    For short actions that touch no filesystem or network (a log line built from values at hand):
    they share one thread with the deadlines, which wait while an action runs.
    """
    return _WATCHDOG.arm(seconds, action)


def cancel(token: int) -> bool:
    """Cancel a :func:`call_later` action; return whether it had already run (or was running)."""
    return _WATCHDOG.disarm(token)


def _tcp_socket(sock: Any) -> Any:
    """The TCP socket under ``sock``. Through an ``https://`` proxy urllib3 runs the server's TLS inside
    the proxy's in an ``SSLTransport``, which has no ``shutdown()``; its TCP socket is ``.socket``."""
    while not hasattr(sock, "shutdown") and hasattr(sock, "socket"):
        sock = sock.socket
    return sock


def _shut_down(sock: socket.socket) -> Callable[[], None]:
    target = _tcp_socket(sock)

    def action() -> None:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    return action


#: Set on an exception raised while connecting (``"connect"``: TCP and the TLS handshake, so nothing
#: of the request left) or while sending the request (``"send"``); read by ``exceptions.never_sent``.
PHASE_ATTRIBUTE = "bctrl_phase"


def _tag(exc: BaseException, phase: str) -> None:
    if getattr(exc, PHASE_ATTRIBUTE, None) is None:
        with contextlib.suppress(AttributeError, TypeError):
            setattr(exc, PHASE_ATTRIBUTE, phase)


class _HeadDeadline:
    """Mixed into urllib3's connections: the answer's head must arrive within HEAD_FACTOR x timeout,
    and a failure says whether it happened while connecting or after the request started to go out
    (a TLS error's text cannot tell: "EOF occurred in violation of protocol" comes from either)."""

    sock: socket.socket | None
    timeout: Any

    def connect(self) -> None:
        try:
            super().connect()  # type: ignore[misc]
        except BaseException as exc:
            _tag(exc, "connect")
            raise

    def request(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        except BaseException as exc:
            _tag(exc, "send")
            raise

    def getresponse(self) -> Any:
        limit = self.timeout if isinstance(self.timeout, (int, float)) else None
        token = None
        if limit and self.sock is not None:
            token = _WATCHDOG.arm(HEAD_FACTOR * limit, _shut_down(self.sock))
        try:
            return super().getresponse()  # type: ignore[misc]
        except Exception as exc:
            if token is not None and _WATCHDOG.disarm(token):
                raise AnswerTooSlow(
                    f"did not send the status and headers of its answer within {HEAD_FACTOR * limit:g} s"  # type: ignore[operator]
                ) from exc
            raise
        finally:
            if token is not None:
                _WATCHDOG.disarm(token)


class _HTTPConnection(_HeadDeadline, HTTPConnection):
    pass


class _HTTPSConnection(_HeadDeadline, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections bound the wait for an answer's head, directly or through
    an HTTP(S) proxy (a SOCKS proxy keeps urllib3's own connection classes)."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Create the pool manager as requests does, with the deadline-aware connection pools."""
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """requests' proxy manager for ``proxy``, with the deadline-aware pools for an HTTP(S) proxy."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


def read_body(raw: Any, read_timeout: float, *, download: bool) -> Iterator[list[bytes]]:
    """The body of ``raw`` (a urllib3 response), decoded, as lists of pieces of about 1 MiB in all.

    Lists, not joined bytes: a local download writes them with one ``writev`` each, without a copy.
    Raises :class:`AnswerTooSlow` when a JSON answer is not complete within BODY_FACTOR x timeout, or a
    download falls below LOW_SPEED_BYTES a second over a window of ``read_timeout`` seconds; urllib3's
    own errors otherwise.
    """
    # An answer without Content-Encoding has nothing to decode, and urllib3's decoding path costs
    # a buffer round trip per read (about 6 % of a download's CPU).
    decode = bool(raw.headers.get("Content-Encoding"))
    read1 = raw.read1  # what one socket read brought (urllib3 2.3+, which pyproject.toml requires)
    started = window_start = time.monotonic()
    window_bytes = 0
    window = max(read_timeout, 1.0)
    pieces: list[bytes] = []
    gathered = 0
    # A download that arrives fast is read in bulk: blocking reads of one window's worth at the low
    # speed (so a server that keeps the limit always finishes one within the window), each bounded by
    # the watchdog. One urllib3 call per few TLS records instead of one per record (~8 % of the CPU).
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    bulk = int(min(_PIECE_SIZE, LOW_SPEED_BYTES * window))
    # Below one TLS record (a timeout under 16 s) a bulk read would mean more calls, not fewer.
    can_bulk = download and not decode and sock is not None and bulk >= _BULK_MIN
    in_bulk = False
    gathering_since = started
    while True:
        # read1 returns what one socket read brought (over TLS one 16 KiB record), so the deadlines
        # are checked after every read; a bulk read waits for its bytes under the watchdog.
        chunk = _bulk_read(raw, bulk, window, sock) if in_bulk else read1(_PIECE_SIZE, decode_content=decode)
        if chunk:
            pieces.append(chunk)
            gathered += len(chunk)
        now = time.monotonic()
        if pieces and (not chunk or gathered >= _READ_SIZE or len(pieces) >= _MAX_PIECES):
            yield pieces
            # Bulk reads while the body comes at 64 times the limit or faster, piece by piece otherwise.
            in_bulk = can_bulk and gathered >= 64 * LOW_SPEED_BYTES * (now - gathering_since)
            pieces, gathered, gathering_since = [], 0, now
        if not chunk:
            return
        if not download and now - started > BODY_FACTOR * read_timeout:
            raise AnswerTooSlow(
                f"did not send the whole answer within {BODY_FACTOR * read_timeout:g} s of its headers"
            )
        window_bytes += len(chunk)
        if download and now - window_start >= window:
            # The speed over the time that really passed: a chunk can arrive long after the window
            # ended, and comparing with one window's worth would halve the limit.
            elapsed = now - window_start
            if window_bytes < LOW_SPEED_BYTES * elapsed:
                raise AnswerTooSlow(
                    f"sent the download at {window_bytes / elapsed:.0f} bytes/s over {elapsed:.1f} s, "
                    f"below the {LOW_SPEED_BYTES} bytes/s the hook waits for"
                )
            window_start, window_bytes = now, 0


def _bulk_read(raw: Any, amount: int, window: float, sock: Any) -> bytes:
    """``amount`` bytes of the body (fewer at its end), which must arrive within ``window`` seconds."""
    token = _WATCHDOG.arm(window, _shut_down(sock))
    try:
        chunk: bytes = raw.read(amount, decode_content=False)
    except Exception as exc:
        if _WATCHDOG.disarm(token):
            raise _too_slow_in_bulk(amount, window) from exc
        raise
    except BaseException:  # a KeyboardInterrupt: no deadline outlives its read
        _WATCHDOG.disarm(token)
        raise
    if _WATCHDOG.disarm(token):
        raise _too_slow_in_bulk(amount, window)
    return chunk


def _too_slow_in_bulk(amount: int, window: float) -> AnswerTooSlow:
    return AnswerTooSlow(
        f"sent less than {amount} bytes of the download in {window:g} s, "
        f"below the {LOW_SPEED_BYTES} bytes/s the hook waits for"
    )
