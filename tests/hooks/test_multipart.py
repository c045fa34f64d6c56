"""The streaming multipart body is byte-for-byte what requests-toolbelt would encode, at any size."""

from __future__ import annotations

import bz2
import gzip
import io
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from requests_toolbelt.multipart.encoder import MultipartEncoder

from airflow_provider_bctrl._multipart import FileChangedError, StreamingMultipartBody

FIELDS = [("name", "rapport ü.csv"), ("runtimePath", "inputs/"), ("metadata", '{"k":"v"}')]


def _reference(
    body: StreamingMultipartBody, fields: list[tuple[str, str]], data: bytes, filename: str
) -> bytes:
    boundary = body.content_type.split("boundary=", 1)[1]
    encoder = MultipartEncoder(
        fields=[*fields, ("file", (filename, io.BytesIO(data), "text/csv"))], boundary=boundary
    )
    return encoder.to_string()


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 1024 * 1024 + 7, 3 * 1024 * 1024 + 1])
@pytest.mark.parametrize("fields", [[], FIELDS], ids=["file only", "with fields"])
def test_body_equals_toolbelts_encoding(tmp_path: Path, size: int, fields: list[tuple[str, str]]) -> None:
    data = os.urandom(size)
    source = tmp_path / "données.csv"
    source.write_bytes(data)
    body = StreamingMultipartBody(
        fields=fields, file_field="file", path=source, filename="données.csv", content_type="text/csv"
    )
    expected_length = len(body)
    encoded = body.to_bytes()
    assert len(encoded) == expected_length
    assert encoded == _reference(body, fields, data, "données.csv")


def _stream_body(data: bytes, **options: Any) -> StreamingMultipartBody:
    """``data`` as ``x.csv`` from an in-memory stream of known size, after ``FIELDS``."""
    return StreamingMultipartBody(
        fields=FIELDS,
        file_field="file",
        stream=io.BytesIO(data),
        size=len(data),
        filename="x.csv",
        content_type="text/csv",
        **options,
    )


def test_a_stream_of_known_size_encodes_the_same(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    body = _stream_body(data, chunk_size=64 * 1024)
    assert body.to_bytes() == _reference(body, FIELDS, data, "x.csv")


def test_progress_reports_file_bytes_and_the_body_is_single_use(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(b"x" * (2 * 1024 * 1024 + 5))
    seen: list[int] = []
    body = StreamingMultipartBody(
        fields=[],
        file_field="file",
        path=source,
        filename="a.csv",
        content_type="text/csv",
        on_progress=seen.append,
    )
    body.to_bytes()
    assert seen == [1024 * 1024, 2 * 1024 * 1024, 2 * 1024 * 1024 + 5]
    with pytest.raises(RuntimeError, match="only once"):
        body.to_bytes()


@pytest.mark.parametrize(("declared", "actual", "word"), [(10, 5, "shrank"), (10, 15, "grew")])
def test_a_source_that_changes_size_fails_the_body(declared: int, actual: int, word: str) -> None:
    body = StreamingMultipartBody(
        fields=[],
        file_field="file",
        stream=io.BytesIO(b"y" * actual),
        size=declared,
        filename="a.csv",
        content_type="text/csv",
    )
    with pytest.raises(FileChangedError, match=word):
        body.to_bytes()


def _through(body: StreamingMultipartBody, sock: object) -> bytes:
    """Iterate the body as a connection whose socket is ``sock`` would; nothing is sent to ``sock``.

    Each chunk is copied as it comes: the body reuses one buffer for the next chunk.
    """
    return b"".join([bytes(chunk) for chunk in body])


def test_a_stream_without_a_regular_file_is_chunked_even_over_plain_tcp() -> None:
    """sendfile needs a regular file; an object-storage stream (here in memory) goes as chunks."""
    data = os.urandom(300_000)
    body = _stream_body(data)
    with socket.socket() as plain:
        assert _through(body, plain) == _reference(body, FIELDS, data, "x.csv")


def test_without_a_connection_socket_the_body_is_chunked(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_bytes(b"abc")
    body = StreamingMultipartBody(
        fields=[], file_field="file", path=source, filename="a.csv", content_type="text/csv"
    )
    assert _through(body, None) == _reference(body, [], b"abc", "a.csv")
    with pytest.raises(RuntimeError, match="only once"):
        _through(body, None)


@pytest.mark.parametrize("opener", [gzip.open, bz2.open], ids=["gzip", "bz2"])
def test_a_decompressing_stream_is_read_through_not_sendfiled(tmp_path: Path, opener: Any) -> None:
    """A wrapper's descriptor is that of the compressed file: its bytes must come through the stream."""
    data = os.urandom(200_000)
    packed = tmp_path / "data.csv.z"
    with opener(packed, "wb") as out:
        out.write(data)
    body = StreamingMultipartBody(
        fields=[],
        file_field="file",
        stream=opener(packed, "rb"),
        size=len(data),
        filename="data.csv",
        content_type="text/csv",
    )
    with socket.socket() as plain:  # a plain TCP socket: sendfile would be chosen for a plain file
        assert _through(body, plain) == _reference(body, [], data, "data.csv")
