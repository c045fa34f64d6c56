"""One download attempt: the file's bytes streamed from the content answer into the destination, counted and checked.

The hook's ``_download`` resolves the destination and runs these attempts under its retry loop; a
break in the middle starts again from the first byte, into a fresh temporary file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests

from airflow_provider_bctrl._deadlines import AnswerTooSlow
from airflow_provider_bctrl._http import body_pieces, quiet_cause, too_slow, transport_error
from airflow_provider_bctrl._progress import StartLine, TransferProgress
from airflow_provider_bctrl._settings import BctrlConnectionSettings
from airflow_provider_bctrl._storage import Destination
from airflow_provider_bctrl.exceptions import BctrlTransportError, BctrlUnexpectedResponseError

__all__ = ["CONTENT_HEADERS", "receive"]

#: The bytes as stored: no transparent decompression, so Content-Length counts what is read.
CONTENT_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity"}


def receive(
    response: requests.Response,
    target: Destination,
    *,
    file_id: str,
    settings: BctrlConnectionSettings,
    stored_size: Callable[[], int | None],
    log: logging.Logger | Any,
    quiet_seconds: float,
    start: StartLine | None = None,
) -> str:
    """Write the body of a ``GET /v1/files/{id}/content`` answer to ``target``; return its URI.

    The bytes appear at the destination only when all of them arrived: their count is checked against
    ``Content-Length``, or against the stored file's size (``stored_size``, one metadata request) when
    the answer has none or the server compressed it although identity was asked for.

    :param start: the download's held-back start line, logged before the first progress line.
    """
    # A server may compress although identity was asked for; requests then decodes, and
    # Content-Length counts the compressed bytes, so the stored file's size is the check instead.
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    expected = _int_header(response, "Content-Length") if encoding == "identity" else None
    progress = TransferProgress(
        log, f"Download of {file_id}", expected or 0, quiet_seconds=quiet_seconds, start=start
    )
    received = 0
    try:
        # Without a usable Content-Length the stored file's size is the check, known before the
        # first byte is written: a body that outgrows it (a decompression bomb) stops at once.
        size = expected if expected is not None else stored_size()
        if size is not None:
            target.check_room(size)
        with target.atomic_writer() as out:
            for pieces in body_pieces(response, settings, download=True):
                out.writelines(pieces)
                received += sum(map(len, pieces))
                if expected:
                    progress.update(received)
                elif size is not None and received > size:
                    raise _size_mismatch(file_id, f"more than {size}", size, encoding)
            if expected is not None and received != expected:
                raise BctrlTransportError(
                    f"The download of {file_id} ended after {received} of {expected} bytes; nothing was written.",
                    retryable=True,
                )
            if size is not None and received != size:
                raise _size_mismatch(file_id, str(received), size, encoding)
    except AnswerTooSlow as exc:
        raise too_slow(exc, "download", settings, idempotent=True) from quiet_cause(exc, settings)
    except requests.RequestException as exc:
        raise transport_error(exc, "download", settings, idempotent=True) from quiet_cause(exc, settings)
    finally:
        response.close()
    progress.done = received
    progress.finish(f"written to {target.shown}")
    return target.uri


def _size_mismatch(file_id: str, received: str, size: int, encoding: str) -> BctrlUnexpectedResponseError:
    """The error for a download without a usable Content-Length whose size is not ``sizeBytes``."""
    how = "" if encoding == "identity" else f", after undoing the {encoding} encoding the server added"
    return BctrlUnexpectedResponseError(
        f"The download of {file_id} gave {received} bytes{how}, but the stored file has {size}; "
        "nothing was written."
    )


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None
