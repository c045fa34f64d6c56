"""A streaming ``multipart/form-data`` body with a known length.

requests-toolbelt's :class:`~requests_toolbelt.multipart.encoder.MultipartEncoder` encodes the form:
the boundary, every part's headers (``Content-Disposition`` with the file name, ``Content-Type``) and
the framing length. Its own ``read()`` path is slow for large files, though: ``http.client`` pulls it
8 KiB at a time through toolbelt's internal buffers (measured at 0.2x curl's speed on loopback). So
this body takes the encoded framing from toolbelt and streams the file's bytes itself, in large
``readinto`` chunks into one reused buffer, handing each chunk straight to the socket. Memory stays
constant whatever the file size, and requests sends a ``Content-Length`` (no chunked encoding).

Over a plain TCP socket (``http://``, see :mod:`airflow_provider_bctrl._transport`) a local file's
bytes do not pass through the process at all: sendfile(2) moves them from the page cache to
the socket. Over TLS they cannot skip the process (it encrypts them), and the chunks are used.
"""

from __future__ import annotations

import errno
import io
import os
import select
import socket
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, TypeGuard

from requests_toolbelt.multipart.encoder import MultipartEncoder

__all__ = ["FileChangedError", "StreamingMultipartBody"]

#: 1 MiB: large enough that per-chunk overhead vanishes, small enough to stay in the CPU cache's reach.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Whether a regular file goes to a plain TCP socket with sendfile(2) (see :meth:`chunks_through`).
#: Off only to measure or test the chunked path over plain http.
SENDFILE = True
#: Most bytes one sendfile call is asked for: progress is reported between calls.
SENDFILE_STEP = 16 * 1024 * 1024
#: sendfile(2) errors that mean "not for this file or socket" (nothing was sent; chunks instead).
_SENDFILE_REFUSED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})


class FileChangedError(OSError):
    """The source changed size while it was being uploaded."""


class StreamingMultipartBody:
    """An iterable request body: ``len()`` is the exact byte count, iteration yields the bytes.

    One instance serves one attempt. It reads from a local file it opens itself (``path``) or from an
    opened binary ``stream`` of known ``size`` (object storage), and closes it when iteration ends
    or :meth:`close` is called. A source that grows or shrinks while it is sent fails the attempt
    rather than sending a body that disagrees with its ``Content-Length``.

    :param fields: the text parts, in order, as ``(name, value)`` pairs.
    :param file_field: the name of the file part.
    :param path: the local file to stream; or
    :param stream: an opened binary stream, with
    :param size: its size in bytes.
    :param filename: the file part's ``filename``.
    :param content_type: the file part's ``Content-Type``.
    :param on_progress: called with the number of file bytes sent so far after every chunk.
    """

    def __init__(
        self,
        *,
        fields: Sequence[tuple[str, str]],
        file_field: str,
        filename: str,
        content_type: str,
        path: str | os.PathLike[str] | None = None,
        stream: BinaryIO | None = None,
        size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        if stream is None:
            if path is None:
                raise ValueError("give a path or a stream")
            stream = open(path, "rb")  # noqa: SIM115 - closed by close() / the end of iteration
        self._file: BinaryIO = stream
        try:
            if size is None:
                size = os.fstat(stream.fileno()).st_size
            self.file_size: int = size
            # toolbelt encodes the framing around an empty placeholder for the file part and the
            # file's bytes are spliced in where it sits: the stream never passes through toolbelt,
            # which would read some kinds of stream (BytesIO-like ones) whole into memory.
            encoder = MultipartEncoder(fields=[*fields, (file_field, (filename, b"", content_type))])
            self.content_type: str = encoder.content_type
            self._length: int = encoder.len + size
            boundary = encoder.boundary.encode("ascii")  # b"--" + boundary value
            # toolbelt's framing: "--B\r\n" headers body "\r\n" for every part, then "--B--\r\n".
            self._head = b"".join(
                boundary + b"\r\n" + part.headers + part.body.read() + b"\r\n" for part in encoder.parts[:-1]
            ) + (boundary + b"\r\n" + encoder.parts[-1].headers)
            self._tail = b"\r\n" + boundary + b"--\r\n"
        except BaseException:
            stream.close()
            raise
        self._chunk_size = chunk_size
        self._sendfile_fd = _sendfile_fd(stream)
        #: Called with the number of file bytes sent so far after every chunk (may be set later).
        self.on_progress = on_progress
        self._started = False

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks(None)

    def chunks_through(self, connection: object) -> Iterator[bytes]:
        """Iterate the body for sending through ``connection`` (an http.client-style connection).

        The framing is yielded as usual. The file part, when the source is a regular local file and
        the connection's socket a plain TCP socket, goes straight from the file to that socket with
        sendfile(2) at the moment it is due (the framing before it has been sent by then);
        otherwise it is yielded in chunks like :meth:`__iter__` does.
        """
        return self._chunks(connection)

    def _chunks(self, connection: object | None) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a StreamingMultipartBody can be sent only once; build a new one per attempt")
        self._started = True
        try:
            yield self._head
            sock = getattr(connection, "sock", None)
            sent_by_kernel = False
            if SENDFILE and self._sendfile_fd is not None and _is_plain_tcp(sock):
                sent_by_kernel = self._send_file(sock)
            if not sent_by_kernel:
                # memoryviews go to the socket as they are; typed as bytes for requests' signature.
                yield from self._file_chunks()  # type: ignore[misc]
            yield self._tail
        finally:
            self.close()

    def _send_file(self, sock: socket.socket) -> bool:
        """Send the file part with sendfile(2); False when the kernel refuses it before the first byte.

        A socket with a timeout is non-blocking underneath, so a full send buffer is waited out with
        poll(2) for at most the socket's timeout, as ``sendall`` would. sendfile(2) takes explicit
        offsets and leaves the file position alone; it is moved to the end afterwards for the "did it
        grow?" check.
        """
        assert self._sendfile_fd is not None
        out_fd, in_fd = sock.fileno(), self._sendfile_fd
        timeout = sock.gettimeout()
        start = self._file.tell()
        sent = 0
        poller: select.poll | None = None
        while sent < self.file_size:
            try:
                count = os.sendfile(out_fd, in_fd, start + sent, min(SENDFILE_STEP, self.file_size - sent))
            except BlockingIOError:
                if poller is None:
                    poller = select.poll()
                    poller.register(out_fd, select.POLLOUT)
                if not poller.poll(None if timeout is None else timeout * 1000):
                    raise TimeoutError("timed out sending the file to the socket") from None
                continue
            except OSError as exc:
                if sent == 0 and exc.errno in _SENDFILE_REFUSED:
                    return False  # e.g. a file system without sendfile support: chunks instead
                raise
            if count == 0:
                raise self._shrank(sent)
            sent += count
            if self.on_progress is not None:
                self.on_progress(sent)
        self._file.seek(start + sent)
        self._check_not_grown()
        return True

    def _file_chunks(self) -> Iterator[memoryview]:
        # The buffer is reused: http.client sends each chunk completely (sendall) before asking for
        # the next one, so no chunk is overwritten while it is still in flight.
        buffer = bytearray(min(self._chunk_size, max(self.file_size, 1)))
        view = memoryview(buffer)
        read_into: Callable[[memoryview], int | None] = getattr(self._file, "readinto", self._read_into)
        remaining = self.file_size
        sent = 0
        while remaining > 0:
            count = read_into(view[: min(len(buffer), remaining)])
            if not count:
                raise self._shrank(sent)
            remaining -= count
            sent += count
            yield view[:count]
            if self.on_progress is not None:
                self.on_progress(sent)
        self._check_not_grown()

    def _shrank(self, sent: int) -> FileChangedError:
        return FileChangedError(
            f"{self._label()} shrank while it was being uploaded ({sent} of {self.file_size} bytes read)"
        )

    def _check_not_grown(self) -> None:
        if self._file.read(1):
            raise FileChangedError(f"{self._label()} grew while it was being uploaded")

    def _read_into(self, target: memoryview) -> int:
        data = self._file.read(len(target))
        target[: len(data)] = data
        return len(data)

    def _label(self) -> str:
        return repr(getattr(self._file, "name", "the source"))

    def close(self) -> None:
        """Close the source. Safe to call more than once."""
        self._file.close()

    def to_bytes(self) -> bytes:
        """The whole body in memory. For tests and small files only."""
        out = io.BytesIO()
        for chunk in self:
            out.write(chunk)
        return out.getvalue()


def _sendfile_fd(stream: BinaryIO) -> int | None:
    """The descriptor to sendfile ``stream``'s bytes from, or None when they must be read through it.

    Only a binary file opened from disk as it is (``open(path, "rb")``: a ``BufferedReader`` over a
    ``FileIO``) qualifies. A wrapper (gzip, bz2, an fsspec opener that decompresses) can expose the
    descriptor of a file whose raw bytes are not the stream's bytes.
    """
    if not hasattr(os, "sendfile") or type(stream) is not io.BufferedReader:
        return None
    if type(stream.raw) is not io.FileIO:
        return None
    try:
        descriptor = stream.fileno()
        return descriptor if stat.S_ISREG(os.fstat(descriptor).st_mode) else None
    except (OSError, ValueError):
        return None


def _is_plain_tcp(sock: object) -> TypeGuard[socket.socket]:
    """A stdlib socket without TLS (TLS sockets, and sockets of green-thread libraries, are other types)."""
    return type(sock) is socket.socket and type(sock).__module__ == "socket"
