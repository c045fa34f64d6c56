"""Client JSON as the emulator accepts it: parsed once, with limits, so no input can crash a handler.

Every JSON text a client sends (a request body, upload's ``metadata`` part) goes through
:func:`parse_client_json`. Whatever is wrong with it becomes a 400 ``ErrorResponse``: invalid syntax,
nesting deeper than :data:`MAX_JSON_DEPTH` (Python's parser would otherwise raise ``RecursionError``),
``NaN``/``Infinity`` (not JSON), and strings with lone UTF-16 surrogates (``"\\ud800"`` is valid JSON
syntax but no valid text: it cannot become a file name, a log line or a UTF-8 response).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_bctrl.testing._emulator_errors import ApiError, invalid

#: Deepest nesting of objects and arrays accepted. The contract's bodies are two levels deep; artifact
#: metadata is caller-owned, so it gets room, but nothing near what exhausts Python's stack.
MAX_JSON_DEPTH = 64


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _bad(message: str, field: str | None) -> ApiError:
    return invalid(message, field=field) if field else invalid(message)


def parse_client_json(data: bytes | str, *, field: str | None = None, what: str = "The body") -> Any:
    """Parse ``data`` as JSON within the limits above; a 400 ``request.invalid`` naming ``field`` if not.

    :param data: the JSON text or its UTF-8 bytes.
    :param field: the request field the text came from, reported in ``details.field``.
    :param what: how the error message names the text, e.g. ``"'metadata'"``.
    """
    try:
        value = json.loads(data, parse_constant=_not_json)
    except RecursionError:
        raise _bad(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.", field) from None
    except ValueError:  # includes UnicodeDecodeError and the NaN/Infinity refusal
        raise _bad(f"{what} is not valid JSON.", field) from None
    _check_shape(value, field, what)
    return value


def _check_shape(value: Any, field: str | None, what: str) -> None:
    """Walk ``value`` without recursion: bounded depth, and every string valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, field, what)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _bad(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.", field)
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, field, what)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str, field: str | None, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(
            f"{what} contains a lone UTF-16 surrogate ('\\ud800'-style escape): not valid text.", field
        ) from None
