"""Helpers shared by the emulator tests (no tests here): raw HTTP calls, multipart bodies, contract schemas.

The tests talk to the emulator with plain ``requests`` on purpose: they check the wire format the hook
will meet, without depending on the hook.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import requests
import yaml
from openapi_schema_validator import OAS31Validator

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

OPENAPI_DIR = Path(__file__).resolve().parent.parent / "contract" / "openapi"
BOUNDARY = "emulatorTestBoundary7MA4YWxkTrZu0gW"


def session() -> requests.Session:
    """A session that never uses proxies from the environment (the emulator is on loopback)."""
    s = requests.Session()
    s.trust_env = False
    return s


def auth(emu: BctrlEmulator, **extra: str) -> dict[str, str]:
    """Headers with the emulator's Bearer key."""
    return {"Authorization": f"Bearer {emu.api_key}", **extra}


def part(
    name: str, value: str | bytes, *, filename: str | None = None, content_type: str | None = None
) -> bytes:
    """One multipart part, ending with CRLF (the boundary line goes before it)."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    data = value.encode() if isinstance(value, str) else value
    return head.encode() + b"\r\n" + data + b"\r\n"


def form(
    file_chunks: Iterable[bytes] | None,
    *,
    filename: str = "data.bin",
    before: dict[str, str] | None = None,
    after: dict[str, str] | None = None,
    file_content_type: str = "application/octet-stream",
) -> Iterator[bytes]:
    """A multipart body as a stream of chunks: ``before`` fields, the file part, ``after`` fields."""
    for name, value in (before or {}).items():
        yield part(name, value)
    if file_chunks is not None:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {file_content_type}\r\n\r\n"
        )
        yield head.encode()
        yield from file_chunks
        yield b"\r\n"
    for name, value in (after or {}).items():
        yield part(name, value)
    yield f"--{BOUNDARY}--\r\n".encode()


def form_bytes(file_data: bytes | None, **kwargs: Any) -> bytes:
    """The whole multipart body of :func:`form` as bytes (for small uploads with a Content-Length)."""
    return b"".join(form([file_data] if file_data is not None else None, **kwargs))


def upload(
    emu: BctrlEmulator,
    runtime_id: str,
    data: bytes | None = b"hello emulator\n",
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """POST a small multipart upload with a Content-Length."""
    with session() as s:
        return s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            data=form_bytes(data, **kwargs),
            headers={
                **auth(emu),
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                **(headers or {}),
            },
            timeout=30,
        )


def post_json(emu: BctrlEmulator, path: str, body: Any, **extra_headers: str) -> requests.Response:
    """POST JSON to ``path`` with the key."""
    with session() as s:
        return s.post(f"{emu.url}{path}", json=body, headers=auth(emu, **extra_headers), timeout=30)


def get(emu: BctrlEmulator, path: str, **kwargs: Any) -> requests.Response:
    """GET ``path`` with the key."""
    with session() as s:
        return s.get(f"{emu.url}{path}", headers=auth(emu), timeout=30, **kwargs)


def collect(
    emu: BctrlEmulator, runtime_id: str, body: dict[str, Any], space_id: str | None = None
) -> requests.Response:
    """POST collect for a runtime in ``space_id`` (default: the emulator's default space)."""
    return post_json(emu, f"/v1/spaces/{space_id or emu.space_id}/runtimes/{runtime_id}/files/collect", body)


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def scratch_is_empty(emu: BctrlEmulator) -> bool:
    """Nothing half-written is left in the store's scratch directory."""
    return not any((emu.data_dir / "tmp").iterdir())


def runtime_root(emu: BctrlEmulator, runtime_id: str) -> Path:
    """The directory that is ``/`` inside a runtime (the emulator's documented on-disk layout)."""
    return emu.data_dir / "runtimes" / runtime_id / "root"


@functools.cache
def _document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OPENAPI_DIR / name).read_text(encoding="utf-8"))
    return loaded


def assert_matches_schema(instance: Any, component: str, document: str = "upload-runtime-file.yaml") -> None:
    """Validate ``instance`` against ``#/components/schemas/<component>`` of a contract document.

    The schema embeds the document's ``components`` so ``$ref``s resolve; formats (uuid, date-time)
    are checked too.
    """
    doc = _document(document)
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER).validate(instance)


def assert_error(
    response: requests.Response, status: int, code: str, reason: str | None = None
) -> dict[str, Any]:
    """The response is the contract's error envelope with this status and code; returns the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert_matches_schema(body, "ErrorResponse")
    assert body["code"] == code, body
    if reason is not None:
        assert body["reasonClass"] == reason, body
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert body["requestId"].startswith("req_")
    return body


def random_bytes(size: int) -> bytes:
    """``size`` random bytes."""
    return os.urandom(size)
