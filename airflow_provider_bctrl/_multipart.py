"""A streaming ``multipart/form-data`` body with a known length.

requests-toolbelt's :class:`~requests_toolbelt.multipart.encoder.MultipartEncoder` encodes the form:
the boundary, every part's headers (``Content-Disposition`` with the file name, ``Content-Type``) and
the total length. Its own ``read()`` path is slow for large files, though: ``http.client`` pulls it
8 KiB at a time through toolbelt's internal buffers (measured at 0.2x curl's speed on loopback). So
this body takes the encoded part headers from toolbelt and streams the file's bytes itself, in large
``readinto`` chunks into one reused buffer, handing each chunk straight to the socket. Memory stays
constant whatever the file size, and requests sends a ``Content-Length`` (no chunked encoding).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence

from requests_toolbelt.multipart.encoder import MultipartEncoder

__all__ = ["FileChangedError", "StreamingMultipartBody"]

#: 1 MiB: large enough that per-chunk overhead vanishes, small enough to stay in the CPU cache's reach.
DEFAULT_CHUNK_SIZE = 1024 * 1024


class FileChangedError(OSError):
    """The local file changed size while it was being uploaded."""


class StreamingMultipartBody:
    """An iterable request body: ``len()`` is the exact byte count, iteration yields the bytes.

    One instance serves one attempt: it opens the file when created (so a file that vanished or
    changed is caught per attempt) and closes it when iteration ends or :meth:`close` is called.

    :param fields: the text parts, in order, as ``(name, value)`` pairs.
    :param file_field: the name of the file part.
    :param path: the local file to stream.
    :param filename: the file part's ``filename``.
    :param content_type: the file part's ``Content-Type``.
    :param on_progress: called with the number of file bytes sent so far after every chunk.
    """

    def __init__(
        self,
        *,
        fields: Sequence[tuple[str, str]],
        file_field: str,
        path: str | os.PathLike[str],
        filename: str,
        content_type: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self._file: io.BufferedReader = open(path, "rb")  # noqa: SIM115 - closed by close() / end of iteration
        try:
            self.file_size = os.fstat(self._file.fileno()).st_size
            encoder = MultipartEncoder(fields=[*fields, (file_field, (filename, self._file, content_type))])
            self.content_type: str = encoder.content_type
            self._length: int = encoder.len
            boundary = encoder.boundary.encode("ascii")  # b"--" + boundary value
            # Everything but the file bytes, pre-encoded once: toolbelt's framing is
            # "--B\r\n" headers body "\r\n" per part, then "--B--\r\n".
            self._prefix = b"".join(
                boundary + b"\r\n" + part.headers + part.body.read() + b"\r\n" for part in encoder.parts[:-1]
            )
            self._file_headers = boundary + b"\r\n" + encoder.parts[-1].headers
            self._suffix = b"\r\n" + boundary + b"--\r\n"
        except BaseException:
            self._file.close()
            raise
        self._chunk_size = chunk_size
        #: Called with the number of file bytes sent so far after every chunk (may be set later).
        self.on_progress = on_progress
        self._started = False

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a StreamingMultipartBody can be sent only once; build a new one per attempt")
        self._started = True
        try:
            yield self._prefix + self._file_headers
            # memoryviews go to the socket as they are; typed as bytes for requests' signature.
            yield from self._file_chunks()  # type: ignore[misc]
            yield self._suffix
        finally:
            self.close()

    def _file_chunks(self) -> Iterator[memoryview]:
        # The buffer is reused: http.client sends each chunk completely (sendall) before asking for
        # the next one, so no chunk is overwritten while it is still in flight.
        buffer = bytearray(min(self._chunk_size, max(self.file_size, 1)))
        view = memoryview(buffer)
        remaining = self.file_size
        sent = 0
        self._file.seek(0)
        while remaining > 0:
            count = self._file.readinto(view[: min(len(buffer), remaining)])
            if not count:
                raise FileChangedError(
                    f"{self._file.name!r} shrank while it was being uploaded "
                    f"({sent} of {self.file_size} bytes read)"
                )
            remaining -= count
            sent += count
            yield view[:count]
            if self.on_progress is not None:
                self.on_progress(sent)
        if self._file.read(1):
            raise FileChangedError(f"{self._file.name!r} grew while it was being uploaded")

    def close(self) -> None:
        """Close the file. Safe to call more than once."""
        self._file.close()

    def to_bytes(self) -> bytes:
        """The whole body in memory. For tests and small files only."""
        out = io.BytesIO()
        for chunk in self:
            out.write(chunk)
        return out.getvalue()
