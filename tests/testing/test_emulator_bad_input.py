"""Every client mistake gets a 4xx ``ErrorResponse`` from the emulator, never a 500 (issue 12, class 9).

The inputs are classes, each with several members, sent to every route that reads them: JSON nested
too deep for Python's parser, JSON that is syntax-valid but not text (lone surrogates) or not JSON
(``NaN``), path segments and names longer than the file system allows (in characters or only in UTF-8
bytes), and whole paths that only become too long under the emulator's data directory. After each, the
store holds nothing new and the request log still serialises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from test_emulator_support import BOUNDARY, assert_error, auth, form_bytes, scratch_is_empty, session

from airflow_provider_bctrl.testing._emulator_json import MAX_JSON_DEPTH
from airflow_provider_bctrl.testing.emulator import BctrlEmulator


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


# Depths below, at and far beyond what json.loads survives (its C scanner raises RecursionError).
DEPTHS = [MAX_JSON_DEPTH + 1, 999, 5_000, 100_000]
SEGMENT_TOO_LONG = [
    "a" * 256,  # over NAME_MAX in characters
    "\u00e9" * 200,  # 200 characters, 400 bytes in UTF-8
    "\u6587" * 90,  # 90 characters, 270 bytes
]
# Under the 4096-character path limit, over PATH_MAX once joined under the data directory.
PATH_TOO_LONG_WHEN_JOINED = "/".join(["b" * 250] * 16)


def post_raw(emu: BctrlEmulator, path: str, body: str) -> requests.Response:
    with session() as s:
        return s.post(
            f"{emu.url}{path}",
            data=body.encode("utf-8"),
            headers={**auth(emu), "Content-Type": "application/json"},
            timeout=30,
        )


def upload_fields(
    emu: BctrlEmulator, runtime_id: str, filename: str = "h.txt", **fields: str
) -> requests.Response:
    with session() as s:
        return s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            data=form_bytes(b"hello", filename=filename, before=fields),
            headers={**auth(emu), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=30,
        )


@pytest.fixture
def unchanged_store(emu: BctrlEmulator) -> Callable[[], None]:
    """A check that nothing was stored or half-written since the fixture ran, and the log still reads."""
    files_before = len(emu.stored_files())
    artifacts_before = len(emu.artifacts())

    def check() -> None:
        assert len(emu.stored_files()) == files_before
        assert len(emu.artifacts()) == artifacts_before
        assert scratch_is_empty(emu)
        with session() as s:
            assert s.get(f"{emu.url}/_emulator/requests", timeout=30).status_code == 200

    return check


def json_routes(emu: BctrlEmulator, runtime_id: str) -> list[str]:
    return [
        f"/v1/spaces/{emu.space_id}/runtimes/{runtime_id}/files/collect",
        f"/v1/runtimes/{runtime_id}/files/stage",
        "/_emulator/runtimes",
        "/_emulator/faults",
    ]


@pytest.mark.parametrize("depth", DEPTHS)
def test_deeply_nested_json_bodies_are_400(
    emu: BctrlEmulator, runtime_id: str, depth: int, unchanged_store: Callable[[], None]
) -> None:
    emu.write_runtime_file(runtime_id, "out.txt", b"x")
    bodies = [
        nested_arrays(depth),
        nested_objects(depth),
        '{"path": "out.txt", "artifact": {"metadata": ' + nested_objects(depth) + "}}",
    ]
    for route in json_routes(emu, runtime_id):
        for body in bodies:
            error = assert_error(post_raw(emu, route, body), 400, "request.invalid", "invalid_input")
            assert "nested" in error["error"], error
    unchanged_store()


@pytest.mark.parametrize(
    "body",
    [
        '{"path": "\\ud800out.txt"}',
        '{"path": "out.txt", "name": "x\\udfff"}',
        '{"path": "out.txt", "destinationPath": "d/\\ud83d"}',
        '{"path": "out.txt", "artifact": {"name": "\\ud800", "kind": "report"}}',
        '{"path": "out.txt", "artifact": {"metadata": {"\\udc00": 1}}}',
        '{"path": "out.txt", "artifact": {"metadata": {"n": NaN}}}',
        '{"path": "out.txt", "artifact": {"metadata": {"n": -Infinity}}}',
    ],
)
def test_json_that_is_not_text_or_not_json_is_400(
    emu: BctrlEmulator, runtime_id: str, body: str, unchanged_store: Callable[[], None]
) -> None:
    emu.write_runtime_file(runtime_id, "out.txt", b"x")
    assert_error(post_raw(emu, json_routes(emu, runtime_id)[0], body), 400, "request.invalid")
    unchanged_store()


@pytest.mark.parametrize("metadata", [nested_objects(5_000), '{"n": NaN}', '{"k": "\\ud800"}'])
def test_upload_metadata_with_the_same_classes_is_400(
    emu: BctrlEmulator, runtime_id: str, metadata: str, unchanged_store: Callable[[], None]
) -> None:
    body = assert_error(upload_fields(emu, runtime_id, metadata=metadata), 400, "request.invalid")
    assert body["details"]["field"] == "metadata"
    unchanged_store()


@pytest.mark.parametrize("segment", SEGMENT_TOO_LONG, ids=["ascii-256", "latin-400-bytes", "cjk-270-bytes"])
def test_names_and_segments_over_the_file_system_limit_are_400(
    emu: BctrlEmulator, runtime_id: str, segment: str, unchanged_store: Callable[[], None]
) -> None:
    emu.write_runtime_file(runtime_id, "out.txt", b"x")
    collect_route = json_routes(emu, runtime_id)[0]
    with session() as s:
        post = lambda route, body: s.post(f"{emu.url}{route}", json=body, headers=auth(emu), timeout=30)  # noqa: E731
        assert_error(post(collect_route, {"path": segment}), 400, "runtime_file.path_invalid")
        assert_error(
            post(collect_route, {"path": f"/workspace/{segment}/x"}), 400, "runtime_file.path_invalid"
        )
        assert_error(post(collect_route, {"path": "out.txt", "name": segment}), 400, "request.invalid")
        assert_error(
            post(collect_route, {"path": "out.txt", "storagePath": f"d/{segment}"}),
            400,
            "storage_file.path_invalid",
        )
    assert_error(upload_fields(emu, runtime_id, runtimePath=f"{segment}/"), 400, "runtime_file.path_invalid")
    assert_error(upload_fields(emu, runtime_id, name=segment), 400, "request.invalid")
    assert_error(
        upload_fields(emu, runtime_id, destinationPath=f"d/{segment}"), 400, "storage_file.path_invalid"
    )
    assert_error(upload_fields(emu, runtime_id, filename=segment), 400, "request.invalid")
    with session() as s:
        put = s.put(
            f"{emu.url}/_emulator/runtimes/{runtime_id}/fs", params={"path": segment}, data=b"x", timeout=30
        )
    assert_error(put, 400, "runtime_file.path_invalid")
    unchanged_store()


def test_a_path_too_long_only_once_joined_is_400(
    emu: BctrlEmulator, runtime_id: str, unchanged_store: Callable[[], None]
) -> None:
    assert len(PATH_TOO_LONG_WHEN_JOINED) < 4096  # passes the lexical limit on purpose
    assert_error(
        upload_fields(emu, runtime_id, runtimePath=PATH_TOO_LONG_WHEN_JOINED + "/"),
        400,
        "request.path_too_long",
    )
    with session() as s:
        put = s.put(
            f"{emu.url}/_emulator/runtimes/{runtime_id}/fs",
            params={"path": PATH_TOO_LONG_WHEN_JOINED},
            data=b"x",
            timeout=30,
        )
    assert_error(put, 400, "request.path_too_long")
    unchanged_store()


def test_the_emulator_logs_no_traceback_for_client_mistakes(
    emu: BctrlEmulator, runtime_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    route: dict[str, Any] = {"route": json_routes(emu, runtime_id)[0]}
    with caplog.at_level("DEBUG", logger="airflow_provider_bctrl"):
        post_raw(emu, route["route"], nested_objects(100_000))
        upload_fields(emu, runtime_id, runtimePath=PATH_TOO_LONG_WHEN_JOINED + "/")
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
