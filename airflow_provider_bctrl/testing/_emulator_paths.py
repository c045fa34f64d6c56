"""Path rules of the emulator: validation of client-supplied paths and names, and containment.

Three kinds of path reach the emulator from clients:

* workspace paths (upload's and stage's ``runtimePath``): relative to the runtime workspace;
* runtime paths (collect's ``path``, the control API's ``fs?path=``): absolute inside the runtime, or
  relative to ``/workspace``;
* durable paths (``destinationPath``, ``storagePath``): relative keys in a space's file store.

Lexical checks reject the obvious escapes up front; every path that touches the disk is then resolved
with ``realpath`` and checked to stay inside its root, so symlinks cannot lead outside either.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from airflow_provider_bctrl.testing._emulator_errors import ApiError, conflict, invalid

#: Longest path the emulator accepts (the documented runtimePath limit).
MAX_PATH_CHARS = 4096
#: Longest display name (the documented ``name`` limit).
MAX_NAME_CHARS = 255
#: Longest single path segment in UTF-8 bytes: the file system's NAME_MAX. A name of 255 characters
#: may be longer than that in bytes (``é`` is two), so both limits apply.
MAX_SEGMENT_BYTES = 255
#: The runtime workspace, as the runtime sees it.
WORKSPACE = "workspace"

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
#: Ids become directory names, so they are restricted to a safe alphabet.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

_COPY_CHUNK = 1024 * 1024


def validate_name(name: str, *, field: str = "name") -> str:
    """Check a display/file name: non-empty, at most 255 characters, no ``/``, no NUL."""
    if not name or name in {".", ".."}:
        raise invalid(f"'{field}' must be a non-empty file name.", field=field)
    if len(name) > MAX_NAME_CHARS:
        raise invalid(f"'{field}' is longer than {MAX_NAME_CHARS} characters.", field=field)
    if "/" in name or "\x00" in name:
        raise invalid(f"'{field}' may not contain '/' or NUL characters.", field=field)
    if _utf8_length(name) > MAX_SEGMENT_BYTES:
        raise invalid(f"'{field}' is longer than {MAX_SEGMENT_BYTES} bytes in UTF-8.", field=field)
    return name


def _utf8_length(text: str) -> int:
    """Length of ``text`` in UTF-8; text that has no UTF-8 form (lone surrogates) counts as too long."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return MAX_PATH_CHARS + 1


def validate_id(value: str, *, kind: str) -> str:
    """Check an id chosen by a caller of the control API (it becomes a directory name)."""
    if not _ID_PATTERN.match(value) or ".." in value:
        raise invalid(
            f"'{kind}' must be 1-128 characters of letters, digits, '_', '.', '-' (a uuid is typical).",
            field=kind,
        )
    return value


def _path_invalid(message: str, field: str, value: str, *, code: str) -> ApiError:
    shown = value if len(value) <= 200 else value[:200] + "..."
    return invalid(message, code=code, field=field, path=shown)


def _segments(value: str, *, field: str, code: str, allow_dot: bool) -> list[str]:
    """Split ``value`` on ``/`` after the checks every kind of path shares."""
    if len(value) > MAX_PATH_CHARS:
        raise _path_invalid(f"'{field}' is longer than {MAX_PATH_CHARS} characters.", field, value, code=code)
    if "\x00" in value:
        raise _path_invalid(f"'{field}' may not contain NUL characters.", field, value, code=code)
    # A backslash is a legal file-name character on Linux, but clients on Windows use it as a separator
    # (``..\\..\\etc``); refusing it keeps what the caller meant and what the server does the same.
    if "\\" in value:
        raise _path_invalid(f"'{field}' may not contain backslashes; use '/'.", field, value, code=code)
    parts = value.split("/")
    if any(part == ".." for part in parts):
        raise _path_invalid(f"'{field}' may not contain '..' segments.", field, value, code=code)
    if not allow_dot and any(part == "." for part in parts):
        raise _path_invalid(f"'{field}' may not contain '.' segments.", field, value, code=code)
    if any(_utf8_length(part) > MAX_SEGMENT_BYTES for part in parts):
        raise _path_invalid(
            f"'{field}' has a segment longer than {MAX_SEGMENT_BYTES} bytes in UTF-8.",
            field,
            value,
            code=code,
        )
    return parts


def workspace_path(runtime_path: str | None, name: str) -> str:
    """Normalise upload's/stage's ``runtimePath`` to a path relative to the workspace.

    Absent: ``name`` at the workspace root. Ending in ``/``: a directory, ``name`` is appended.
    """
    code = "runtime_file.path_invalid"
    if runtime_path is None or runtime_path == "":
        return name
    if runtime_path.startswith("/") or _DRIVE_LETTER.match(runtime_path):
        raise _path_invalid(
            "'runtimePath' must be relative to the runtime workspace.", "runtimePath", runtime_path, code=code
        )
    parts = _segments(runtime_path, field="runtimePath", code=code, allow_dot=True)
    is_dir = parts[-1] in {"", "."}
    kept = [part for part in parts if part not in {"", "."}]
    if is_dir or not kept:
        kept.append(name)
    return "/".join(kept)


def runtime_location(path: str, *, field: str = "path") -> list[str]:
    """Split collect's ``path`` into segments below the runtime root.

    Absolute paths are inside the runtime (``/tmp/x`` is ``<root>/tmp/x``); relative paths are relative
    to ``/workspace``.
    """
    code = "runtime_file.path_invalid"
    if not path:
        raise _path_invalid(f"'{field}' must be a non-empty path.", field, path, code=code)
    parts = _segments(path, field=field, code=code, allow_dot=True)
    kept = [part for part in parts if part not in {"", "."}]
    if path.startswith("/"):
        return kept
    return [WORKSPACE, *kept]


def durable_path(value: str | None, name: str, default: str, *, field: str) -> str:
    """Validate a durable storage path (``destinationPath``/``storagePath``); ``default`` when absent.

    Durable paths are relative keys without ``.``/``..``/empty segments. A trailing ``/`` names a
    folder, and ``name`` is appended.
    """
    code = "storage_file.path_invalid"
    if value is None or value == "":
        return default
    if value.startswith("/") or _DRIVE_LETTER.match(value):
        raise _path_invalid(f"'{field}' must be a relative storage path.", field, value, code=code)
    parts = _segments(value, field=field, code=code, allow_dot=False)
    if parts[-1] == "":
        parts[-1] = name
    if any(part == "" for part in parts):
        raise _path_invalid(f"'{field}' may not contain empty segments.", field, value, code=code)
    return "/".join(parts)


def is_within(real_path: str, real_root: str) -> bool:
    """Whether the resolved ``real_path`` is ``real_root`` itself or below it."""
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def _escape_error(field: str, shown: str) -> ApiError:
    return invalid(
        f"'{field}' resolves outside the runtime.", code="runtime_file.path_invalid", field=field, path=shown
    )


def resolve_inside(root: Path, segments: Sequence[str], *, field: str, shown: str) -> str:
    """Resolve ``root/segments`` (following symlinks) and insist the result stays inside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *segments))
    if not is_within(real, real_root):
        raise _escape_error(field, shown)
    return real


def make_parents_inside(root: Path, segments: Sequence[str], *, field: str, shown: str) -> str:
    """Create the directories ``root/segments`` one level at a time; return the real directory path.

    ``os.makedirs`` would follow a symlinked component wherever it points; walking level by level lets
    each existing component be resolved and checked before anything is created below it.
    """
    real_root = os.path.realpath(root)
    current = real_root
    for segment in segments:
        candidate = os.path.join(current, segment)
        if os.path.lexists(candidate):
            real = os.path.realpath(candidate)
            if not is_within(real, real_root):
                raise _escape_error(field, shown)
            if not os.path.isdir(real):
                raise conflict(
                    "runtime_file.path_conflict",
                    f"'{field}' goes through a file that is not a directory.",
                    field=field,
                    path=shown,
                )
            current = real
        else:
            os.mkdir(candidate)
            current = candidate
    return current


def place_file(
    source: Path, target_dir: str, file_name: str, tmp_dir: Path, *, field: str, shown: str
) -> None:
    """Materialise ``source`` as ``target_dir/file_name``: hardlink (or copy) to a temp name, then rename.

    The rename is atomic and replaces a directory entry rather than writing through it, so an existing
    symlink at the target is replaced, not followed, and later writes to the runtime copy (which also
    go through tmp+rename) never change the stored bytes the link shares.
    """
    target = os.path.join(target_dir, file_name)
    if os.path.isdir(target) and not os.path.islink(target):
        raise conflict(
            "runtime_file.path_conflict", f"'{field}' names an existing directory.", field=field, path=shown
        )
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"place-{os.urandom(8).hex()}"
    try:
        try:
            os.link(source, tmp)
        except OSError:
            # Hardlinks fail across filesystems and on some mounts; a copy keeps the same semantics.
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def copy_stream(src_fd: int, dst_path: Path, hasher: object | None = None) -> int:
    """Copy everything readable from ``src_fd`` into a new file ``dst_path`` in 1 MiB chunks.

    Returns the number of bytes copied; feeds ``hasher.update`` when given. Memory use is one buffer.
    """
    buffer = bytearray(_COPY_CHUNK)
    view = memoryview(buffer)
    total = 0
    update = getattr(hasher, "update", None)
    with open(dst_path, "xb") as out:
        # The loop ends at EOF; a file that keeps growing is bounded by what the disk can hold.
        while True:
            count = os.readv(src_fd, [buffer])
            if count == 0:
                break
            chunk = view[:count]
            out.write(chunk)
            if update is not None:
                update(chunk)
            total += count
    return total
