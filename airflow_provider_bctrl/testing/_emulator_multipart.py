"""Streaming ``multipart/form-data`` reader for uploads.

The body is fed chunk by chunk into python-multipart's callback parser as it arrives from the socket. The
``file`` part goes straight to a temporary file in the store's scratch directory while its sha256 is
computed; the other parts are small text fields kept in memory with a size cap. Nothing ever holds the
whole body or the whole file: at most two batches of about 1 MiB are in flight, so a multi-GiB upload
costs a few MiB of memory.

Hashing and writing run in a worker thread (both release the GIL) while the event loop receives and
parses the next batch; done inline they made the event loop the bottleneck.

On any error the reader keeps consuming (and discarding) the rest of the body before reporting it, so a
client that is still streaming sees the HTTP error instead of a broken pipe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from airflow_provider_bctrl.testing._emulator_errors import ApiError, invalid
from airflow_provider_bctrl.testing._emulator_records import UploadedBytes

#: Largest non-file part kept in memory.
MAX_FIELD_BYTES = 64 * 1024
#: Most parts accepted in one form (the contract has five).
MAX_PARTS = 32
#: The part that carries the bytes.
FILE_PART = "file"
#: Bytes of file data handed to the worker thread at once.
_BATCH_BYTES = 1024 * 1024
#: One shared worker pool for all uploads' hashing and writing.
_WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="bctrl-emulator-io")


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing; carries the error to answer with."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def _decode(raw: bytes) -> str:
    # Header parameters arrive as raw bytes; browsers and requests/urllib3 send UTF-8 file names.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class FormReader:
    """Reads one multipart upload; what it saw stays readable afterwards (for the request log).

    :param scratch: directory for the temporary file (on the store's filesystem, so it can be renamed in).
    """

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.part_names: list[str] = []
        self.fields: dict[str, str] = {}
        self.file_name: str | None = None
        self.file_content_type: str | None = None
        self.complete = False
        self._error: ApiError | None = None
        self._headers: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._kind = "ignore"  # "file" | "field" | "ignore" for the part being read
        self._field_name = ""
        self._field_value = bytearray()
        self._file: BinaryIO | None = None
        self._tmp_path: Path | None = None
        self._hasher = hashlib.sha256()
        self._size = 0
        self._file_parts = 0
        # File data parsed but not yet written: views into the received (immutable) chunks.
        self._batch: list[memoryview] = []
        self._batch_bytes = 0
        self._in_flight: concurrent.futures.Future[None] | None = None
        self._file_done = False

    # -------------------------------------------------------------------------- parser callbacks

    def _on_part_begin(self) -> None:
        self._headers = {}
        if len(self.part_names) >= MAX_PARTS:
            raise _Rejected(invalid(f"The form has more than {MAX_PARTS} parts."))

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[_decode(bytes(self._header_name)).strip().lower()] = _decode(bytes(self._header_value))
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", "").encode())
        if disposition != b"form-data" or b"name" not in params:
            raise _Rejected(invalid("Every form part needs 'Content-Disposition: form-data; name=...'."))
        name = _decode(params[b"name"])
        self.part_names.append(name)
        if name == FILE_PART:
            self._file_parts += 1
            if self._file_parts > 1:
                raise _Rejected(invalid("The form has more than one 'file' part.", field=FILE_PART))
            self._kind = "file"
            self.file_name = _decode(params[b"filename"]) if b"filename" in params else None
            self.file_content_type = self._headers.get("content-type")
            fd, tmp = _make_temp(self.scratch)
            self._tmp_path = tmp
            self._file = os.fdopen(fd, "wb")
        elif b"filename" in params:
            # A file in a part the contract does not define: read past it without keeping it.
            self._kind = "ignore"
        else:
            self._kind = "field"
            self._field_name = name
            self._field_value.clear()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self._batch.append(memoryview(data)[start:end])
            self._batch_bytes += end - start
            self._size += end - start
        elif self._kind == "field":
            if len(self._field_value) + (end - start) > MAX_FIELD_BYTES:
                raise _Rejected(
                    invalid(f"Form field '{self._field_name}' is larger than {MAX_FIELD_BYTES} bytes.")
                )
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._kind == "file":
            self._file_done = True
        elif self._kind == "field":
            try:
                value = bytes(self._field_value).decode("utf-8")
            except UnicodeDecodeError:
                raise _Rejected(invalid(f"Form field '{self._field_name}' is not UTF-8 text.")) from None
            self.fields[self._field_name] = value
        self._kind = "ignore"

    def _on_end(self) -> None:
        self.complete = True

    # ----------------------------------------------------------------------------- file writing

    def _write_batch(self, views: list[memoryview]) -> None:
        # Runs in a worker thread; hashlib and file writes release the GIL for large buffers.
        assert self._file is not None
        for view in views:
            self._hasher.update(view)
            self._file.write(view)

    async def _flush(self, *, final: bool = False) -> None:
        """Hand the parsed batch to the worker; wait for the previous one first (at most two in flight)."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await asyncio.wrap_future(in_flight)
        if self._batch and self._file is not None:
            views, self._batch, self._batch_bytes = self._batch, [], 0
            self._in_flight = _WORKERS.submit(self._write_batch, views)
            if final:
                await self._flush()
        if final and self._file is not None and self._file_done:
            self._file.close()
            self._file = None

    # ------------------------------------------------------------------------------------ reading

    async def read(self, chunks: AsyncIterator[bytes], content_type: str | None) -> UploadedBytes:
        """Consume the whole body from ``chunks``; return the stored file part or raise :class:`ApiError`.

        The temporary file is deleted on every failure, including a client that disconnects.
        """
        mime, params = parse_options_header(content_type or "")
        parser: MultipartParser | None = None
        if mime != b"multipart/form-data" or not params.get(b"boundary"):
            self._error = invalid("The body must be multipart/form-data with a boundary.")
        else:
            callbacks: Any = {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_end": self._on_end,
            }
            try:
                parser = MultipartParser(params[b"boundary"], callbacks)
            except FormParserError as exc:
                self._error = invalid(f"Bad multipart boundary: {exc}.")
        try:
            # Ends when the client has sent the whole body (or raises when it disconnects).
            async for chunk in chunks:
                if parser is None or self._error is not None or not chunk:
                    continue  # draining: the answer is already decided
                try:
                    parser.write(chunk)
                    if self._batch_bytes >= _BATCH_BYTES:
                        await self._flush()
                except _Rejected as exc:
                    self._error = exc.error
                except FormParserError as exc:
                    self._error = invalid(f"The multipart body is malformed: {exc}.")
                except OSError as exc:
                    self._error = _storage_error(exc)
            if self._error is None:
                try:
                    await self._flush(final=True)
                except OSError as exc:
                    self._error = _storage_error(exc)
            if self._error is not None:
                raise self._error
            if not self.complete:
                raise invalid("The multipart body ended before its closing boundary.")
            if self._tmp_path is None:
                raise invalid("The form has no 'file' part.", field=FILE_PART)
            return UploadedBytes(
                tmp_path=self._tmp_path,
                size_bytes=self._size,
                sha256=self._hasher.hexdigest(),
                file_name=self.file_name,
                content_type=self.file_content_type,
            )
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and delete the temporary file, if any."""
        if self._in_flight is not None:
            # The worker may still be writing this batch; wait (briefly, one batch) before closing.
            concurrent.futures.wait([self._in_flight], timeout=30)
            self._in_flight = None
        self._batch = []
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp_path is not None:
            self._tmp_path.unlink(missing_ok=True)
            self._tmp_path = None


def _storage_error(exc: OSError) -> ApiError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(
            503, "storage.unavailable", "The emulator's disk is full.", "upstream", hint="retry later"
        )
    return ApiError(
        500, "server.error", f"The emulator could not store the upload: {exc.strerror}.", "server"
    )


def _make_temp(scratch: Path) -> tuple[int, Path]:
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"upload-{os.urandom(8).hex()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    return fd, path
