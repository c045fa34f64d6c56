"""The lines a transfer writes to the task log: its start, its progress, and its summary.

A line at most every 10 % of the bytes or every 30 seconds, whichever comes first, and one summary
line at the end — enough to see a multi-GiB upload moving without flooding the log. A transfer that
is over within ``quiet_seconds`` gets the summary line only: nobody needs to watch it move, and its
start line (:class:`StartLine`) is logged only once the transfer has run that long, or has failed.

After the last byte of an upload went out, :meth:`TransferProgress.wait_for_answer` keeps the log from
going silent while the server stores the file: one line once the answer is ``wait_notice`` seconds late,
then one every ``interval`` seconds until :meth:`TransferProgress.answered`. The timed lines run on the
deadline watchdog's one thread (:func:`~airflow_provider_bctrl._deadlines.call_later`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_bctrl._deadlines import call_later, cancel

__all__ = ["StartLine", "TransferProgress"]

_MIB = 1024 * 1024


class StartLine:
    """A transfer's first line ("Uploading ... into runtime ..."), held back for ``after`` seconds.

    A transfer over sooner and well logs its summary line only (:meth:`drop`); a longer one logs this
    line after ``after`` seconds, from the watchdog's thread if the transfer is blocked, and always
    before its first progress or waiting line; a failed one logs it before the failure (:meth:`emit`).

    :param after: seconds to hold the line back; ``0`` or less logs it at once.
    :param line: gives the message and its ``%`` arguments, called only if the line is logged.
    """

    def __init__(self, log: logging.Logger | Any, after: float, line: Callable[[], tuple[Any, ...]]) -> None:
        self._log = log
        self._line = line
        self._lock = threading.Lock()
        self._settled = False
        self._token: int | None = None
        if after > 0:
            self._token = call_later(after, self.emit)
        else:
            self.emit()

    def emit(self) -> None:
        """Log the line now, unless it was logged or dropped already."""
        with self._lock:  # held while logging: no progress line of another thread can come first
            if self._settled:
                return
            self._settled = True
            message, *args = self._line()
            self._log.info(message, *args)
        if self._token is not None:
            cancel(self._token)

    @contextlib.contextmanager
    def on_failure(self) -> Iterator[None]:
        """Log the line if the block fails, before the failure goes on (to a retry's warning or the error)."""
        try:
            yield
        except BaseException:
            self.emit()
            raise

    def drop(self) -> None:
        """The transfer ended well before the line was due: never log it."""
        with self._lock:
            self._settled = True
        if self._token is not None:
            cancel(self._token)


class TransferProgress:
    """Counts bytes of one transfer and logs progress at a bounded rate.

    :param log: where the lines go (the hook's task logger).
    :param label: what moves, e.g. ``"upload of report.csv"``.
    :param total: the expected byte count.
    :param step_fraction: log at most once per this fraction of ``total``.
    :param interval: ...or once per this many seconds, whichever comes first.
    :param quiet_seconds: no progress lines before this many seconds have passed (the summary is
        always logged), so short transfers stay short in the log and cheap.
    :param wait_notice: after :meth:`wait_for_answer`, log that the server is still working once this
        many seconds passed without :meth:`answered` (then every ``interval`` seconds); ``None``: never.
    :param start: the transfer's start line, logged before this counter's first progress or waiting line.
    """

    def __init__(
        self,
        log: logging.Logger | Any,
        label: str,
        total: int,
        *,
        step_fraction: float = 0.10,
        interval: float = 30.0,
        quiet_seconds: float = 0.0,
        clock: Callable[[], float] | None = None,
        wait_notice: float | None = None,
        start: StartLine | None = None,
    ) -> None:
        self._log = log
        self._label = label
        self.total = total
        self._clock = clock or time.monotonic
        self._step = max(1, int(total * step_fraction))
        self._interval = interval
        self._started = self._clock()
        self._next_bytes = self._step
        self._next_time = self._started + interval
        self._quiet_until = self._started + quiet_seconds
        self.done = 0
        self.lines = 0
        self._wait_notice = wait_notice
        self._start = start
        self._answered = False
        self._waiting: int | None = None  # the pending waiting line's call_later token
        # Held from the answered check to the end of a waiting line, and while the answer is recorded:
        # no waiting line can come after the summary line.
        self._waiting_lock = threading.Lock()
        self._sent_after = 0.0
        self._waited = 0.0

    def update(self, done: int) -> None:
        """Record that ``done`` bytes have moved so far; log when a step or the interval is reached."""
        self.done = done
        if done >= self.total:
            return  # the summary line says it
        now = self._clock()
        if now < self._quiet_until:
            return
        if done >= self._next_bytes or now >= self._next_time:
            self._emit(now)
            # Both limits count from this line: the next one comes after another 10 % or 30 s.
            self._next_bytes = done + self._step
            self._next_time = now + self._interval

    def _emit(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        percent = 100.0 * self.done / self.total if self.total else 100.0
        if self._start is not None:
            self._start.emit()
        self.lines += 1
        self._log.info(
            "%s: %.1f / %.1f MiB (%.0f%%), %.1f MiB/s",
            self._label,
            self.done / _MIB,
            self.total / _MIB,
            percent,
            self.done / _MIB / elapsed,
        )

    def wait_for_answer(self) -> None:
        """The whole body went out: from now on, say so in the log while no answer has come."""
        if self._wait_notice is None or self._waiting is not None or self._answered:
            return
        self._sent_after = max(self._clock() - self._started, 0.0)
        self._waited = self._wait_notice
        self._waiting = call_later(self._wait_notice, self._notice_waiting)

    def answered(self) -> None:
        """The attempt is over (answered or failed): no more waiting lines. Safe to call more than once."""
        with self._waiting_lock:
            self._answered = True
            if self._waiting is not None:
                cancel(self._waiting)

    def _notice_waiting(self) -> None:
        """On the watchdog's thread: one waiting line, and the next one in ``interval`` seconds."""
        with self._waiting_lock:
            if self._waiting is not None:
                cancel(self._waiting)  # it has run (this call): the watchdog forgets it
            if self._answered:
                return
            if self._start is not None:
                self._start.emit()
            self.lines += 1
            self._log.info(
                "%s: waiting for BCTRL to store %s (all sent in %.1f s; no answer for %.0f s yet)",
                self._label,
                human_size(self.total),
                self._sent_after,
                self._waited,
            )
            self._waited += self._interval
            self._waiting = call_later(self._interval, self._notice_waiting)

    def finish(self, outcome: str = "") -> float:
        """Log the summary line (size, time, throughput) and return the elapsed seconds.

        :param outcome: appended after a ``;``, e.g. the stored file's id, so a transfer's result is
            on its summary line rather than on a line of its own.
        """
        self.answered()
        if self._start is not None:
            self._start.drop()  # logged already if the transfer took long; not needed otherwise
        elapsed = max(self._clock() - self._started, 1e-9)
        self._log.info(
            "%s finished: %s in %.2f s (%s/s)%s",
            self._label,
            human_size(self.done),
            elapsed,
            human_size(self.done / elapsed),
            f"; {outcome}" if outcome else "",
        )
        return elapsed


def human_size(count: float) -> str:
    """``104`` → ``"104 B"``, ``1536`` → ``"1.5 KiB"``, ``10485760`` → ``"10.0 MiB"`` (binary units)."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} TiB"
