"""Where uploads read from and downloads write to: local paths or Airflow object storage.

A source or destination is a local path (``str`` / ``os.PathLike``), an
:class:`airflow.sdk.ObjectStoragePath`, or a URI string with a scheme (``s3://bucket/key``,
``file:///data/x.csv``, ``memory://...``) resolved through Airflow's object storage with an optional
connection id. Object storage is imported only when such a value is used, so local-file users pay
nothing for it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from airflow_provider_bctrl._validation import check_local_file
from airflow_provider_bctrl.exceptions import BctrlInputError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

__all__ = [
    "Destination",
    "Source",
    "is_object_path",
    "is_uri",
    "local_path_from_uri",
    "local_source",
    "resolve_destination",
    "resolve_source",
]


def is_uri(value: object) -> bool:
    """Whether ``value`` is a string with a URI scheme such as ``s3://`` (not a Windows drive)."""
    if not isinstance(value, str) or "://" not in value:
        return False
    scheme = value.split("://", 1)[0]
    return len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def is_object_path(value: object) -> bool:
    """Whether ``value`` is an Airflow ``ObjectStoragePath`` (checked without importing object storage)."""
    # Checked by name first so that a plain local path never imports the object storage layer.
    return type(value).__name__ == "ObjectStoragePath" or any(
        cls.__name__ == "ObjectStoragePath" for cls in type(value).__mro__
    )


def local_path_from_uri(uri: str) -> str | None:
    """The plain filesystem path of a ``file://`` URI (percent-decoded), or ``None`` for other schemes.

    ``file:///data/Q1%20report/%C3%9Cbersicht.csv`` gives ``/data/Q1 report/Übersicht.csv``: the bytes of
    the path are decoded the way :meth:`pathlib.Path.as_uri` encoded them, so any file name round-trips.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return os.fsdecode(urllib.parse.unquote_to_bytes(parts.path))


def _object_path(value: Any, conn_id: str | None, argument: str) -> ObjectStoragePath:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    try:
        return ObjectStoragePath(value, conn_id=conn_id)
    except (ValueError, TypeError) as exc:
        raise BctrlInputError(f"{argument} {value!r} is not a usable object storage URI: {exc}") from None


@dataclass(frozen=True)
class Source:
    """A file to upload: its display name, size, and a way to open it for each attempt.

    Give ``local_path`` or ``object_path``. Its URI and shown name are worked out when first asked
    for (a local one resolves symlinks, a few system calls a short upload that logs neither skips).
    """

    name: str
    size: int
    local_path: Path | None = None
    object_path: ObjectStoragePath | None = None

    @cached_property
    def uri(self) -> str:
        """``file:///...`` (absolute, symlinks resolved) for a local file, else the object storage URI."""
        return self.local_path.resolve().as_uri() if self.local_path is not None else str(self.object_path)

    @property
    def shown(self) -> str:
        """How log lines name the source: the plain absolute local path, else the object storage URI.

        Worked out without touching the filesystem (the held-back start line is built on the deadline
        watchdog's thread, which a hung mount must not stall); :attr:`uri` resolves symlinks.
        """
        return os.path.abspath(self.local_path) if self.local_path is not None else self.uri

    def open(self) -> BinaryIO:
        """Open the source for reading (a fresh handle per upload attempt)."""
        if self.local_path is not None:
            return self.local_path.open("rb")
        assert self.object_path is not None
        return self.object_path.open("rb")


def resolve_source(source: Any, *, conn_id: str | None = None, argument: str = "source") -> Source:
    """Check that ``source`` is an existing regular file, locally or in object storage."""
    if isinstance(source, str) and source.startswith("file://") and conn_id is None:
        source = source[len("file://") :]
    if is_uri(source) or is_object_path(source):
        path = _object_path(source, conn_id, argument)
        try:
            if not path.exists():
                raise BctrlInputError(f"{argument} {str(path)!r} does not exist.")
            if not path.is_file():
                raise BctrlInputError(f"{argument} {str(path)!r} is not a file; upload one file at a time.")
            size = int(path.stat().st_size)
        except BctrlInputError:
            raise
        except Exception as exc:  # object stores raise their own types (permissions, missing buckets)
            raise BctrlInputError(f"{argument} {str(path)!r} cannot be read: {exc}") from None
        return Source(name=path.name, size=size, object_path=path)
    return local_source(check_local_file(source, argument), argument)


def local_source(path: Path, argument: str = "source") -> Source:
    """The :class:`Source` for a local file that :func:`check_local_file` accepted."""
    try:
        size = path.stat().st_size
    except OSError:  # gone or changed since it was checked: say what is wrong with it now
        path = check_local_file(path, argument)
        size = path.stat().st_size
    return Source(name=path.name, size=size, local_path=path)


class Writable(Protocol):
    """What :meth:`Destination.atomic_writer` yields: something to write the bytes to."""

    def writelines(self, pieces: list[bytes], /) -> None:
        """Write ``pieces`` one after the other (``io.IOBase.writelines``)."""
        ...


@dataclass(frozen=True)
class Destination:
    """Where a download goes. :meth:`atomic_writer` yields a stream whose bytes appear only on success."""

    uri: str
    local_path: Path | None = None
    object_path: ObjectStoragePath | None = None

    @property
    def shown(self) -> str:
        """How log lines name the destination: the plain absolute local path, else the URI."""
        return local_path_from_uri(self.uri) or self.uri

    @contextmanager
    def atomic_writer(self) -> Iterator[Writable]:
        """Write to a temporary sibling, then move it into place; on any error remove it.

        Readers never see a half-written file at the destination, and a failed download leaves
        whatever was there before untouched.
        """
        token = uuid.uuid4().hex[:12]
        if self.local_path is not None:
            final = self.local_path
            temp = final.with_name(_temp_name(final.name, token))
            try:
                with temp.open("wb", buffering=0) as out:
                    yield _LocalWriter(out.fileno(), self.uri)
                    self._written(lambda: os.fsync(out.fileno()))
                self._written(lambda: os.replace(temp, final))
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            return
        assert self.object_path is not None
        target = self.object_path
        temp_object = target.parent / f".{target.name}.{token}.part"
        try:
            with temp_object.open("wb") as out:
                yield out
            temp_object.rename(target)
        except BaseException:
            try:
                if temp_object.exists():
                    temp_object.unlink()
            except Exception:  # noqa: S110 - best effort: the original error matters more
                pass
            raise

    def _written(self, action: Callable[[], object]) -> None:
        try:
            action()
        except OSError as exc:
            raise _unwritable(self.uri, exc) from None

    def check_room(self, size: int) -> None:
        """Refuse a local download of ``size`` bytes that its file system has no room for, before any is read."""
        if self.local_path is None:
            return
        free = shutil.disk_usage(self.local_path.parent).free
        if size > free:
            raise BctrlInputError(
                f"destination {self.uri} cannot be written: the file has {size} bytes and its file system "
                f"has {free} bytes free. Nothing was written."
            )


class _LocalWriter:
    """A local temporary file whose write failures (a full disk, an I/O error) say which destination.

    Each list of pieces goes to the file with one ``writev``: no copy to join them first.
    """

    def __init__(self, fd: int, uri: str) -> None:
        self._fd = fd
        self._uri = uri

    def writelines(self, pieces: list[bytes]) -> None:
        try:
            written = os.writev(self._fd, pieces)
            rest = memoryview(b"".join(pieces))[written:] if written < sum(map(len, pieces)) else None
            while rest:  # a short write (rare: a signal, a nearly full disk): the remainder, in order
                wrote = os.write(self._fd, rest)
                if not wrote:  # never on Linux for a regular file; not a reason to spin
                    raise OSError(errno.EIO, "the file took no more bytes")
                rest = rest[wrote:]
        except OSError as exc:
            raise _unwritable(self._uri, exc) from None


def _unwritable(uri: str, exc: OSError) -> BctrlInputError:
    return BctrlInputError(
        f"destination {uri} cannot be written: {exc.strerror or exc}. The partial download was removed; "
        "nothing was written at the destination."
    )


def resolve_destination(
    destination: Any,
    file_name: Callable[[], str | None],
    *,
    conn_id: str | None = None,
    argument: str = "destination",
) -> Destination:
    """Resolve where to write; an existing directory (or a value ending in '/') gets a file name appended.

    :param file_name: called only when the destination names a directory (it may cost a request).
    """
    if isinstance(destination, str) and destination.startswith("file://") and conn_id is None:
        destination = destination[len("file://") :]
    if is_uri(destination) or is_object_path(destination):
        text = str(destination)
        path = _object_path(destination, conn_id, argument)
        try:
            is_directory = text.endswith("/") or (path.exists() and path.is_dir())
        except Exception as exc:  # object stores raise their own types (permissions, missing buckets)
            raise BctrlInputError(f"{argument} {text!r} cannot be used: {exc}") from None
        if is_directory:
            path = path / _required_name(file_name(), argument)
        return Destination(uri=str(path), object_path=path)
    if not isinstance(destination, (str, os.PathLike)) or not os.fspath(destination):
        raise BctrlInputError(
            f"{argument} must be a local path, an ObjectStoragePath or a URI such as s3://bucket/key, "
            f"got {destination!r}."
        )
    text = os.fsdecode(os.fspath(destination))
    if "\x00" in text:
        raise BctrlInputError(f"{argument} contains a NUL character.")
    local = Path(text).expanduser()
    try:
        if text.endswith(("/", os.sep)) or local.is_dir():
            local = local / _required_name(file_name(), argument)
        parent = local.parent
        if not parent.is_dir():
            raise BctrlInputError(f"{argument} {str(local)!r}: the directory {str(parent)!r} does not exist.")
        if local.exists() and not stat.S_ISREG(local.stat().st_mode):
            raise BctrlInputError(f"{argument} {str(local)!r} exists and is not a regular file.")
        absolute = local.resolve()
        # What the download will create first, created and removed now: a destination that cannot
        # be written fails here, before the bytes are asked for.
        probe = absolute.with_name(_temp_name(absolute.name, uuid.uuid4().hex[:12]))
        with probe.open("xb"):
            pass
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENAMETOOLONG:
            reason += (
                f"; the download first writes a temporary file named like the destination plus "
                f"{len(_temp_name(''))} characters, so shorten the file name"
            )
        raise BctrlInputError(f"{argument} {text!r} cannot be written: {reason}.") from None
    return Destination(uri=absolute.as_uri(), local_path=absolute)


def _temp_name(name: str, token: str = "0" * 12) -> str:
    """The temporary sibling a download writes before moving it into place."""
    return f".{name}.{token}.part"


def _required_name(file_name: str | None, argument: str) -> str:
    if not file_name or "/" in file_name or "\x00" in file_name or file_name in (".", ".."):
        raise BctrlInputError(
            f"{argument} is a directory and the stored file has no usable name; name the file."
        )
    return file_name
