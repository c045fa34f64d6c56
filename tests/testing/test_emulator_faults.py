"""Fault injection: error statuses, Retry-After, delays, dropped connections before and after acting."""

from __future__ import annotations

import time

import pytest
import requests
from test_emulator_support import assert_error, auth, collect, get, session, upload

from airflow_provider_bctrl.testing.emulator import BctrlEmulator, EmulatorError


def stored_names(emu: BctrlEmulator) -> set[str]:
    return {f["name"] for f in emu.stored_files()}


def test_rate_limit_with_retry_after_then_normal(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.add_fault("upload", status=429, retry_after="2")
    before = stored_names(emu)
    limited = upload(emu, runtime_id, b"x", filename="limited.txt")
    body = assert_error(limited, 429, "rate_limited", "rate_limited")
    assert limited.headers["Retry-After"] == "2"
    assert body["hint"] == "retry after 2s"
    assert stored_names(emu) == before
    assert upload(emu, runtime_id, b"x", filename="limited.txt").status_code == 200


@pytest.mark.parametrize(
    ("route", "status", "code", "reason"),
    [
        ("whoami", 500, "server.error", "server"),
        ("whoami", 502, "upstream.bad_gateway", "upstream"),
        ("whoami", 503, "storage.unavailable", "upstream"),
        ("whoami", 504, "upstream.timeout", "upstream"),
        ("whoami", 403, "auth.forbidden", "capability_denied"),
        ("whoami", 401, "auth.required", "unauthorized"),
        ("whoami", 400, "request.invalid", "invalid_input"),
        ("whoami", 409, "request.conflict", "conflict"),
        ("file", 404, "file.not_found", "not_found"),
    ],
)
def test_status_faults(emu: BctrlEmulator, route: str, status: int, code: str, reason: str) -> None:
    emu.add_fault(route, status=status)
    path = "/v1/auth/whoami" if route == "whoami" else "/v1/files/anything"
    assert_error(get(emu, path), status, code, reason)


def test_count_wildcard_and_fifo(emu: BctrlEmulator) -> None:
    emu.add_fault("whoami", count=2, status=503)
    emu.add_fault("*", status=500)
    with session() as s:
        statuses = [
            s.get(f"{emu.url}/v1/auth/whoami", headers=auth(emu), timeout=10).status_code for _ in range(4)
        ]
    assert statuses == [503, 503, 500, 200]


def test_fault_listing_and_clearing(emu: BctrlEmulator) -> None:
    emu.add_fault("collect", count=3, status=500, after="processing")
    with session() as s:
        pending = s.get(f"{emu.url}/_emulator/faults", timeout=10).json()["data"]
    assert len(pending) == 3
    assert pending[0] == {
        "route": "collect",
        "status": 500,
        "retryAfter": None,
        "delaySeconds": None,
        "drop": False,
        "after": "processing",
    }
    emu.clear_faults()
    with session() as s:
        assert s.get(f"{emu.url}/_emulator/faults", timeout=10).json()["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"route": "nope", "status": 500},
        {"route": "upload", "count": 0, "status": 500},
        {"route": "upload", "status": 200},
        {"route": "upload"},
        {"route": "upload", "status": 500, "drop": True},
        {"route": "upload", "drop": "yes"},
        {"route": "upload", "delaySeconds": -1},
        {"route": "upload", "status": 500, "after": "later"},
        {"route": "upload", "drop": True, "retryAfter": "1"},
    ],
)
def test_invalid_fault_requests(emu: BctrlEmulator, body: dict[str, object]) -> None:
    with session() as s:
        response = s.post(f"{emu.url}/_emulator/faults", json=body, timeout=10)
    assert_error(response, 400, "request.invalid")
    # The helper refuses an unknown route before sending; what only the server checks is its error.
    with pytest.raises(ValueError, match="route must be one of"):
        emu.add_fault("nope", status=500)
    with pytest.raises(EmulatorError, match=r"request\.invalid"):
        emu.add_fault("upload", count=0, status=500)


def test_delay_makes_a_slow_normal_response(emu: BctrlEmulator) -> None:
    emu.add_fault("whoami", delay_seconds=0.6)
    started = time.monotonic()
    response = get(emu, "/v1/auth/whoami")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.55
    emu.add_fault("whoami", delay_seconds=1.0)
    with session() as s, pytest.raises(requests.ReadTimeout):
        s.get(f"{emu.url}/v1/auth/whoami", headers=auth(emu), timeout=(5, 0.3))


def test_drop_before_processing_stores_nothing(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.add_fault("upload", drop=True)
    before = stored_names(emu)
    with pytest.raises(requests.ConnectionError):
        upload(emu, runtime_id, b"dropped" * 10_000, filename="dropped-before.bin")
    assert "dropped-before.bin" not in stored_names(emu)
    assert stored_names(emu) == before
    entry = emu.requests_log()[-1]
    assert entry["status"] is None
    assert entry["fault"]["drop"] is True
    # The server is fine afterwards.
    assert upload(emu, runtime_id, b"ok", filename="after-drop.bin").status_code == 200


def test_drop_after_processing_has_acted(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.add_fault("upload", drop=True, after="processing")
    with pytest.raises(requests.ConnectionError):
        upload(emu, runtime_id, b"acted", filename="dropped-after.bin")
    assert "dropped-after.bin" in stored_names(emu)
    assert emu.read_runtime_file(runtime_id, "dropped-after.bin") == b"acted"


def test_status_after_processing_has_acted(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file(runtime_id, "made.txt", b"made")
    emu.add_fault("collect", status=500, after="processing")
    assert_error(collect(emu, runtime_id, {"path": "made.txt", "name": "ambiguous.txt"}), 500, "server.error")
    assert "ambiguous.txt" in stored_names(emu)


def test_status_before_processing_on_collect_stores_nothing(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file(runtime_id, "made.txt", b"made")
    emu.add_fault("collect", status=503)
    assert_error(
        collect(emu, runtime_id, {"path": "made.txt", "name": "never.txt"}), 503, "storage.unavailable"
    )
    assert "never.txt" not in stored_names(emu)


def test_drop_on_a_get(emu: BctrlEmulator) -> None:
    emu.add_fault("whoami", drop=True)
    with pytest.raises(requests.ConnectionError):
        get(emu, "/v1/auth/whoami")
    assert get(emu, "/v1/auth/whoami").status_code == 200


def test_download_cut_off_mid_body(emu: BctrlEmulator, runtime_id: str) -> None:
    data = b"z" * 1_000_000
    file_id = upload(emu, runtime_id, data, filename="cut.bin").json()["id"]
    emu.add_fault("content", drop=True, after="processing")
    with session() as s:
        response = s.get(f"{emu.url}/v1/files/{file_id}/content", headers=auth(emu), timeout=10, stream=True)
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(data))
        with pytest.raises(requests.RequestException):
            b"".join(response.iter_content(65536))


def test_faults_apply_only_to_their_route(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.add_fault("stage", status=500)
    assert get(emu, "/v1/auth/whoami").status_code == 200
    assert upload(emu, runtime_id, b"x").status_code == 200
    with session() as s:
        pending = s.get(f"{emu.url}/_emulator/faults", timeout=10).json()["data"]
    assert [f["route"] for f in pending] == ["stage"]
