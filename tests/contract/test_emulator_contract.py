"""The emulator's responses against the contract's OpenAPI documents (carried in ./openapi).

Every status the upload document declares (200, 400, 401, 403, 404, 429, 500, 503) is produced and its
body validated against the declared schema, as are collect's 200 and stage's ``RuntimeStagedFile``.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_schema_validator import OAS31Validator

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

OPENAPI = Path(__file__).resolve().parent / "openapi"
UPLOAD_DOC = "upload-runtime-file.yaml"
COLLECT_DOC = "collect-file.yaml"


@functools.cache
def document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OPENAPI / name).read_text(encoding="utf-8"))
    return loaded


def response_schema(doc_name: str, path: str, status: str) -> dict[str, Any]:
    """The declared JSON schema of one response, with the document's components to resolve $refs."""
    doc = document(doc_name)
    schema = doc["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}


def validate(instance: Any, schema: dict[str, Any]) -> None:
    OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER).validate(instance)


UPLOAD_PATH = "/v1/runtimes/{runtimeId}/files/upload"
COLLECT_PATH = "/v1/spaces/{id}/runtimes/{runtimeId}/files/collect"


def test_documents_declare_what_the_emulator_implements() -> None:
    upload = document(UPLOAD_DOC)["paths"][UPLOAD_PATH]["post"]
    assert sorted(upload["responses"]) == ["200", "400", "401", "403", "404", "429", "500", "503"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert sorted(form["properties"]) == ["destinationPath", "file", "metadata", "name", "runtimePath"]
    collect = document(COLLECT_DOC)["paths"][COLLECT_PATH]["post"]
    body = collect["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["path"]


@pytest.fixture
def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _upload(
    http: requests.Session, emu: BctrlEmulator, runtime_id: str, key: str | None = None
) -> requests.Response:
    return http.post(
        f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
        files={"file": ("c.txt", b"contract")},
        data={"runtimePath": "contract/"},
        headers={"Authorization": f"Bearer {key or emu.api_key}"},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("status", "make"),
    [
        ("200", lambda http, emu, rt: _upload(http, emu, rt)),
        ("400", lambda http, emu, rt: http.post(
            f"{emu.url}/v1/runtimes/{rt}/files/upload", files={"file": ("x", b"x")},
            data={"runtimePath": "/abs"}, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=30)),
        ("401", lambda http, emu, rt: _upload(http, emu, rt, key="bctrl_wrong")),
        ("404", lambda http, emu, rt: _upload(http, emu, str(uuid.uuid4()))),
    ],
)  # fmt: skip
def test_upload_responses_match_the_document(
    http: requests.Session, emu: BctrlEmulator, runtime_id: str, status: str, make: Any
) -> None:
    response = make(http, emu, runtime_id)
    assert str(response.status_code) == status
    validate(response.json(), response_schema(UPLOAD_DOC, UPLOAD_PATH, status))
    assert response.headers["X-Request-Id"].startswith("req_")


@pytest.mark.parametrize("status", ["403", "429", "500", "503"])
def test_upload_fault_statuses_match_the_document(
    http: requests.Session, emu: BctrlEmulator, runtime_id: str, status: str
) -> None:
    emu.add_fault("upload", status=int(status), retry_after="1" if status == "429" else None)
    response = _upload(http, emu, runtime_id)
    assert str(response.status_code) == status
    body = response.json()
    validate(body, response_schema(UPLOAD_DOC, UPLOAD_PATH, status))
    assert body["requestId"] == response.headers["X-Request-Id"]


def test_collect_and_stage_responses_match_the_documents(
    http: requests.Session, emu: BctrlEmulator, runtime_id: str
) -> None:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    emu.write_runtime_file(runtime_id, "/tmp/runtime/output/results.json", b"{}")
    url = f"{emu.url}/v1/spaces/{emu.space_id}/runtimes/{runtime_id}/files/collect"
    for body in ({"path": "/tmp/runtime/output/results.json"}, {"path": "/tmp/runtime/output/results.json",
                                                                 "artifact": {"kind": "report"}}):  # fmt: skip
        response = http.post(url, json=body, headers=headers, timeout=30)
        validate(response.json(), response_schema(COLLECT_DOC, COLLECT_PATH, "200"))
    file_id = response.json()["file"]["id"]
    staged = http.post(
        f"{emu.url}/v1/runtimes/{runtime_id}/files/stage",
        json={"fileId": file_id},
        headers=headers,
        timeout=30,
    )
    validate(staged.json(), response_schema(UPLOAD_DOC, UPLOAD_PATH, "200"))
    # Collect declares no error responses; the emulator answers with the common envelope anyway.
    missing = http.post(url, json={"path": "/nope"}, headers=headers, timeout=30)
    validate(missing.json(), response_schema(UPLOAD_DOC, UPLOAD_PATH, "404"))
