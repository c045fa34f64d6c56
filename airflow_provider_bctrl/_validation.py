"""Argument checks shared by the hook and the operators.

Each check raises :class:`~airflow_provider_bctrl.exceptions.BctrlInputError` with a message that names
the argument, says what is wrong and what is accepted, so a DAG author can fix it without reading
the code. They run before any request is sent.
"""

from __future__ import annotations

import json
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_provider_bctrl.exceptions import BctrlInputError

#: Limits from BCTRL's documentation.
MAX_NAME_LENGTH = 255
MAX_PATH_LENGTH = 4096
MAX_ID_LENGTH = 512

_ID_FORBIDDEN = ("/", "?", "#", "\\", "%")
_ARTIFACT_KEYS = frozenset({"kind", "name", "metadata"})


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _has_control_chars(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def _not_utf8(value: str) -> bool:
    """Whether ``value`` cannot be sent as UTF-8 (it holds a lone surrogate such as ``'\\ud800'``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_utf8(value: str, argument: str) -> None:
    if _not_utf8(value):
        raise BctrlInputError(
            f"{argument} {_describe(value)} contains a lone surrogate, which cannot be sent as UTF-8 "
            "(it often comes from decoding bytes with errors='surrogateescape')."
        )


def _changes_path(value: str) -> bool:
    """Whether an id could change a URL's path: '.', '..', a separator, '%', or control characters.

    Checked on the value and on its Unicode compatibility folding (NFKC), which some servers apply:
    a fullwidth full stop ``'\\uff0e'`` folds to ``'.'``, a fullwidth solidus to ``'/'``.
    """
    for text in {value, unicodedata.normalize("NFKC", value)}:
        if text == "." or ".." in text or any(ch in text for ch in _ID_FORBIDDEN) or _has_control_chars(text):
            return True
    return False


def check_id(value: Any, argument: str) -> str:
    """Return ``value`` if it is usable as an id in a URL path, else raise.

    Ids are opaque strings, but ``.`` or one that contains ``/``, ``?``, ``#``, ``%``, ``..`` or
    control characters could change the request's path, so it is refused rather than silently encoded.
    """
    if not isinstance(value, str):
        raise BctrlInputError(
            f"{argument} must be a string id, got {type(value).__name__} {_describe(value)}."
        )
    if not value.strip():
        raise BctrlInputError(f"{argument} is empty: pass the BCTRL id (for example the runtime's id).")
    if value != value.strip():
        raise BctrlInputError(f"{argument} {_describe(value)} has leading or trailing white space.")
    if len(value) > MAX_ID_LENGTH:
        raise BctrlInputError(f"{argument} is {len(value)} characters long; ids are at most {MAX_ID_LENGTH}.")
    # A dot segment ("." or "..") would be removed by URL normalisation and change the request's
    # path (decision 10); '%' could spell one ("%2e"), '/', '?', '#' and '\\' would split the URL.
    _check_utf8(value, argument)
    if _changes_path(value):
        raise BctrlInputError(
            f"{argument} {_describe(value)} is not a valid id: ids may not be '.' or contain '/', '?', "
            "'#', '%', '\\', '..' or control characters, nor characters that Unicode folding turns "
            "into them (such as a fullwidth full stop, U+FF0E)."
        )
    return value


def check_name(value: Any, argument: str = "name") -> str:
    """A display file name: 1 to 255 characters, no ``/``, no control characters."""
    if not isinstance(value, str):
        raise BctrlInputError(f"{argument} must be a string, got {type(value).__name__}.")
    if not value.strip():
        raise BctrlInputError(
            f"{argument} is empty: give a file name such as 'report.csv', or leave it unset."
        )
    if len(value) > MAX_NAME_LENGTH:
        raise BctrlInputError(
            f"{argument} is {len(value)} characters long; BCTRL accepts at most {MAX_NAME_LENGTH}."
        )
    _check_utf8(value, argument)
    if "/" in value or "\\" in value or _has_control_chars(value):
        raise BctrlInputError(
            f"{argument} {_describe(value)} must be a plain file name without '/', '\\' or control "
            "characters; put directories in runtime_path instead."
        )
    if value in (".", ".."):
        raise BctrlInputError(f"{argument} {value!r} is not a file name.")
    return value


def _check_path_text(value: Any, argument: str) -> str:
    if not isinstance(value, str):
        raise BctrlInputError(f"{argument} must be a string path, got {type(value).__name__}.")
    if not value.strip():
        raise BctrlInputError(f"{argument} is empty.")
    if "\x00" in value:
        raise BctrlInputError(f"{argument} contains a NUL character.")
    if len(value) > MAX_PATH_LENGTH:
        raise BctrlInputError(
            f"{argument} is {len(value)} characters long; BCTRL accepts at most {MAX_PATH_LENGTH}."
        )
    if _has_control_chars(value):
        raise BctrlInputError(f"{argument} {_describe(value)} contains control characters.")
    _check_utf8(value, argument)
    return value


def _segments(value: str) -> list[str]:
    """A path's segments, split on '/' and '\\' alike: one rule for every path-like argument, since a
    server on any platform may read either as a separator. The segments of the value's Unicode
    compatibility folding (NFKC) count too: a server that folds reads two fullwidth full stops (U+FF0E) as ``'..'``."""
    folded = unicodedata.normalize("NFKC", value)
    return re.split(r"[/\\]", value) + (re.split(r"[/\\]", folded) if folded != value else [])


def check_runtime_path(value: Any, argument: str = "runtime_path") -> str:
    """A destination inside the runtime workspace: relative, without ``..`` segments."""
    _check_path_text(value, argument)
    if value.startswith("/") or value.startswith("\\"):
        relative = value.removeprefix("/workspace/").lstrip("/\\") or "inputs/data.csv"
        raise BctrlInputError(
            f"{argument} {_describe(value)} is absolute; it must be relative to the runtime workspace, "
            f"e.g. {relative!r}."
        )
    if ".." in _segments(value):
        raise BctrlInputError(f"{argument} {_describe(value)} may not contain '..' segments.")
    return value


def check_storage_path(value: Any, argument: str) -> str:
    """A durable storage path: relative, without ``.`` or ``..`` segments."""
    _check_path_text(value, argument)
    if value.startswith(("/", "\\")):
        raise BctrlInputError(f"{argument} {_describe(value)} must be relative (no leading '/').")
    if any(seg in (".", "..") for seg in _segments(value)):
        raise BctrlInputError(f"{argument} {_describe(value)} may not contain '.' or '..' segments.")
    return value


def check_runtime_source_path(value: Any, argument: str = "path") -> str:
    """A file inside the runtime to collect: absolute (``/tmp/out/x.csv``) or workspace-relative."""
    _check_path_text(value, argument)
    if ".." in _segments(value):
        raise BctrlInputError(f"{argument} {_describe(value)} may not contain '..' segments.")
    if value.endswith(("/", "\\")):
        raise BctrlInputError(f"{argument} {_describe(value)} names a directory; name the file to collect.")
    return value


def check_local_file(source: Any, argument: str = "source") -> Path:
    """Return the path of a readable regular local file, or raise saying what is wrong with it."""
    if not isinstance(source, (str, os.PathLike)):
        raise BctrlInputError(
            f"{argument} must be a local file path (str or os.PathLike), got {type(source).__name__}."
        )
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise BctrlInputError(f"{argument} is empty: give the path of the file to upload.")
    if "\x00" in text:
        raise BctrlInputError(f"{argument} contains a NUL character.")
    path = Path(text).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BctrlInputError(f"{argument} {str(path)!r} does not exist.") from None
    except NotADirectoryError:
        raise BctrlInputError(
            f"{argument} {str(path)!r} cannot be read: a part of the path before the file name is not "
            "a directory."
        ) from None
    except OSError as exc:
        raise BctrlInputError(f"{argument} {str(path)!r} cannot be read: {exc.strerror or exc}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise BctrlInputError(f"{argument} {str(path)!r} is a directory; upload one file at a time.")
    if not stat.S_ISREG(info.st_mode):
        raise BctrlInputError(
            f"{argument} {str(path)!r} is not a regular file (a pipe, socket or device cannot be uploaded)."
        )
    # Regular files on /proc, /sys and the pseudo file systems under /dev (/dev/mqueue, ...) report
    # sizes that are not their contents' sizes. /dev/shm is tmpfs: its files are ordinary files.
    top = path.resolve().parts[1:3]
    if top[:1] in (("proc",), ("sys",)) or (top[:1] == ("dev",) and top != ("dev", "shm")):
        raise BctrlInputError(
            f"{argument} {str(path)!r} is on a pseudo file system (/proc, /sys, /dev but /dev/shm) whose "
            "file sizes are not their contents' sizes; copy it to a regular file first."
        )
    if not os.access(path, os.R_OK):
        raise BctrlInputError(f"{argument} {str(path)!r} is not readable by this worker's user.")
    return path


def check_json_object(value: Any, argument: str) -> dict[str, Any]:
    """A mapping with string keys that serialises to JSON; returned as a plain dict."""
    if not isinstance(value, Mapping):
        raise BctrlInputError(
            f"{argument} must be a mapping (a dict of JSON values), got {type(value).__name__}."
        )
    result = dict(value)
    bad_keys = [key for key in result if not isinstance(key, str)]
    if bad_keys:
        raise BctrlInputError(f"{argument} keys must be strings; got {_describe(bad_keys[0])}.")
    try:
        # ensure_ascii=False and encode: the form part is sent as UTF-8, which a lone surrogate is not.
        json.dumps(result, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BctrlInputError(f"{argument} is not JSON-serialisable: {exc}.") from None
    return result


def check_artifact(value: Any, argument: str = "artifact") -> dict[str, Any]:
    """The collect ``artifact`` request: a mapping of ``kind``, ``name`` and ``metadata``."""
    if not isinstance(value, Mapping):
        raise BctrlInputError(
            f"{argument} must be a mapping with optional keys 'kind', 'name' and 'metadata', "
            f"got {type(value).__name__}."
        )
    unknown = sorted(str(key) for key in value if key not in _ARTIFACT_KEYS)
    if unknown:
        raise BctrlInputError(
            f"{argument} has unknown keys {unknown}; the API accepts 'kind', 'name' and 'metadata'."
        )
    result: dict[str, Any] = {}
    for key in ("kind", "name"):
        if value.get(key) is not None:
            if not isinstance(value[key], str) or not value[key].strip():
                raise BctrlInputError(f"{argument}[{key!r}] must be a non-empty string.")
            if _has_control_chars(value[key]):
                raise BctrlInputError(
                    f"{argument}[{key!r}] {_describe(value[key])} contains control characters (line breaks, NUL)."
                )
            _check_utf8(value[key], f"{argument}[{key!r}]")
            result[key] = value[key]
    if value.get("metadata") is not None:
        result["metadata"] = check_json_object(value["metadata"], f"{argument}['metadata']")
    return result


#: Longest Idempotency-Key sent (BCTRL documents no limit; 255 is the common one).
MAX_IDEMPOTENCY_KEY = 255


def check_idempotency_key(value: Any, what: str = "idempotency_key") -> str:
    """An ``Idempotency-Key`` header value: 1 to 255 printable ASCII characters."""
    if not isinstance(value, str) or not value:
        raise BctrlInputError(f"{what} must be a non-empty string, got {value!r}.")
    if len(value) > MAX_IDEMPOTENCY_KEY or not (value.isascii() and value.isprintable()):
        raise BctrlInputError(
            f"{what} must be at most {MAX_IDEMPOTENCY_KEY} printable ASCII characters, got {value!r}."
        )
    return value
