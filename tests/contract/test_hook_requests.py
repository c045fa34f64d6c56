"""The hook's real requests, captured on the wire, against the seed OpenAPI documents.

A raw loopback recorder (no HTTP framework in between) keeps every request exactly as the hook sent
it. Each body is validated against the request schema of the seed it belongs to; headers and the
multipart framing are checked by hand. The recorder answers with the seeds' own example response and
with schema-minimal ones, which the hook must parse.
"""

from __future__ import annotations

import email
import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _loopback import HttpRecorder as Recorder
from openapi_schema_validator import OAS31Validator

from airflow_provider_bctrl.hooks.bctrl import BctrlHook

OPENAPI = Path(__file__).parent / "openapi"
KEY = "bctrl_contract_key"
RUNTIME = "3fa85f64-5717-4562-b3fc-2c963f66afa6"

UPLOAD_DOC = yaml.safe_load((OPENAPI / "upload-runtime-file.yaml").read_text())
COLLECT_DOC = yaml.safe_load((OPENAPI / "collect-file.yaml").read_text())
UPLOAD_OP = UPLOAD_DOC["paths"]["/v1/runtimes/{runtimeId}/files/upload"]["post"]
COLLECT_OP = COLLECT_DOC["paths"]["/v1/spaces/{id}/runtimes/{runtimeId}/files/collect"]["post"]

#: The upload seed's example response, verbatim.
SEED_UPLOAD_RESPONSE = {
    "expiresAt": "2024-01-15T09:30:00Z",
    "id": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "name": "project_report_v2.pdf",
    "runtimeId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "runtimePath": "workspace/reports/project_report_v2.pdf",
    "sizeBytes": 245760,
}
MINIMAL_UPLOAD_RESPONSE = {**SEED_UPLOAD_RESPONSE, "expiresAt": None}
MINIMAL_COLLECT_RESPONSE = {
    "file": {
        "contentType": "application/json",
        "createdAt": "not a timestamp",
        "id": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        "name": "results.json",
        "path": "collected/results.json",
        "sizeBytes": 12,
    },
    "artifact": None,
}


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    # $refs point into the document's components: validate against a schema that carries them.
    return OAS31Validator({**schema, "components": doc["components"]})


def _errors(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    return [error.message for error in _validator(doc, schema).iter_errors(instance)]


def _json(payload: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()


@pytest.fixture
def answers() -> dict[str, Any]:
    return {"upload": SEED_UPLOAD_RESPONSE, "collect": MINIMAL_COLLECT_RESPONSE, "content": b"x" * 100_000}


@pytest.fixture
def recorder(answers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    def respond(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        target = request["target"].split("?", 1)[0]
        if target.endswith("/files/upload"):
            return _json(answers["upload"])
        if target.endswith("/files/collect"):
            return _json(answers["collect"])
        if target == "/v1/auth/whoami":
            return _json({"defaultSpaceId": "space-default", "organizationId": "org-1"})
        if target.endswith("/content"):
            data = answers["content"]
            if "gzip" in request["headers"].get("accept-encoding", ""):
                return (
                    200,
                    {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
                    gzip.compress(data),
                )
            return 200, {"Content-Type": "application/octet-stream"}, data
        return 404, {"Content-Type": "application/json"}, b'{"code": "route.not_found", "error": "no"}'

    server = Recorder(respond)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps({"conn_type": "bctrl", "host": server.url, "password": KEY})
    )
    yield server
    server.close()


def _multipart(request: dict[str, Any]) -> list[dict[str, Any]]:
    content_type = request["headers"]["content-type"]
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + request["body"])
    return [
        {
            "name": part.get_param("name", header="content-disposition"),
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "payload": part.get_payload(decode=True),
        }
        for part in message.get_payload()
    ]


def _check_headers(request: dict[str, Any], content_type: str) -> None:
    headers = request["headers"]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["content-type"].startswith(content_type)
    assert int(headers["content-length"]) == len(request["body"])
    assert "transfer-encoding" not in headers


def _upload_instance(parts: list[dict[str, Any]]) -> dict[str, str]:
    # The schema types every part as a string; the file part's bytes stand in as one.
    return {p["name"]: "<bytes>" if p["filename"] else p["payload"].decode() for p in parts}


def test_minimal_upload_is_one_file_part(recorder: Recorder, tmp_path: Path) -> None:
    source = tmp_path / "project_report_v2.pdf"
    source.write_bytes(b"%PDF-1.7 tiny")
    staged = BctrlHook(max_retries=0).upload_file(RUNTIME, source)

    (request,) = recorder.requests
    assert (request["method"], request["target"]) == ("POST", f"/v1/runtimes/{RUNTIME}/files/upload")
    _check_headers(request, "multipart/form-data; boundary=")
    (part,) = _multipart(request)
    assert (part["name"], part["filename"], part["content_type"]) == (
        "file",
        "project_report_v2.pdf",
        "application/pdf",
    )
    assert part["payload"] == source.read_bytes()
    assert (
        _errors(
            UPLOAD_DOC,
            UPLOAD_OP["requestBody"]["content"]["multipart/form-data"]["schema"],
            _upload_instance([part]),
        )
        == []
    )
    # The seed's own example response parses, timestamps included.
    assert staged.raw == SEED_UPLOAD_RESPONSE
    assert staged.runtime_path == "workspace/reports/project_report_v2.pdf"
    assert staged.expires_at is not None
    assert staged.expires_at.year == 2024


def test_full_upload_sends_every_part_as_the_schema_types_it(
    recorder: Recorder, answers: dict[str, Any], tmp_path: Path
) -> None:
    answers["upload"] = MINIMAL_UPLOAD_RESPONSE
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    staged = BctrlHook(max_retries=0).upload_file(
        RUNTIME,
        source,
        name="leads ü.csv",
        runtime_path="inputs/leads.csv",
        destination_path="pipelines/leads.csv",
        metadata={"source": "airflow", "rows": [1, {"n": None}]},
    )

    (request,) = recorder.requests
    _check_headers(request, "multipart/form-data; boundary=")
    parts = _multipart(request)
    instance = _upload_instance(parts)
    assert set(instance) == {"file", "name", "runtimePath", "destinationPath", "metadata"}
    assert (
        _errors(UPLOAD_DOC, UPLOAD_OP["requestBody"]["content"]["multipart/form-data"]["schema"], instance)
        == []
    )
    assert json.loads(instance["metadata"]) == {"source": "airflow", "rows": [1, {"n": None}]}
    assert instance["name"] == "leads ü.csv"
    (file_part,) = [p for p in parts if p["name"] == "file"]
    assert file_part["content_type"] == "text/csv"
    assert staged.expires_at is None  # nullable in the schema


def test_collect_sends_only_the_keys_given(recorder: Recorder, answers: dict[str, Any]) -> None:
    schema = COLLECT_OP["requestBody"]["content"]["application/json"]["schema"]
    hook = BctrlHook(max_retries=0)
    minimal = hook.collect_file(RUNTIME, "/tmp/runtime/output/results.json")
    full = hook.collect_file(
        RUNTIME,
        "/tmp/runtime/output/results.json",
        space_id="space 1",
        storage_path="exports/results.json",
        name="results.json",
        artifact={"kind": "report", "name": "Results", "metadata": {"pages": 2}},
    )

    whoami, first, second = recorder.requests
    assert (whoami["method"], whoami["target"]) == ("GET", "/v1/auth/whoami")
    assert whoami["headers"]["authorization"] == f"Bearer {KEY}"
    assert first["target"] == f"/v1/spaces/space-default/runtimes/{RUNTIME}/files/collect"
    assert second["target"] == f"/v1/spaces/space%201/runtimes/{RUNTIME}/files/collect"
    for request in (first, second):
        _check_headers(request, "application/json")
        assert _errors(COLLECT_DOC, schema, json.loads(request["body"])) == []
    assert json.loads(first["body"]) == {"path": "/tmp/runtime/output/results.json"}
    assert json.loads(second["body"]) == {
        "path": "/tmp/runtime/output/results.json",
        "storagePath": "exports/results.json",
        "name": "results.json",
        "artifact": {"kind": "report", "name": "Results", "metadata": {"pages": 2}},
    }
    # Schema-minimal response: artifact null, createdAt a free string kept as it was.
    assert minimal.artifact is None
    assert minimal.file.created_at == "not a timestamp"
    assert full.raw == MINIMAL_COLLECT_RESPONSE


def test_seed_example_and_minimal_responses_are_schema_valid() -> None:
    """The responses these tests feed the hook are themselves valid, so the tests prove something."""
    upload = {"$ref": "#/components/schemas/RuntimeStagedFile"}
    collect = {"$ref": "#/components/schemas/spaces_runtimesFilesCollect_Response_200"}
    assert _errors(UPLOAD_DOC, upload, SEED_UPLOAD_RESPONSE) == []
    assert _errors(UPLOAD_DOC, upload, MINIMAL_UPLOAD_RESPONSE) == []
    assert _errors(COLLECT_DOC, collect, MINIMAL_COLLECT_RESPONSE) == []


def test_download_asks_for_the_bytes_as_stored(
    recorder: Recorder, answers: dict[str, Any], tmp_path: Path
) -> None:
    """A server that compresses when allowed must not break the length check: the hook asks for identity."""
    target = tmp_path / "out.bin"
    uri = BctrlHook(max_retries=0).download_file("f47ac10b-58cc-4372-a567-0e02b2c3d479", target)
    assert uri == target.resolve().as_uri()
    assert target.read_bytes() == answers["content"]
    (request,) = recorder.requests
    assert request["headers"]["accept-encoding"] == "identity"


def test_a_file_name_with_quotes_also_goes_as_the_name_part(recorder: Recorder, tmp_path: Path) -> None:
    source = tmp_path / 'the "final" report.pdf'
    source.write_bytes(b"%PDF")
    BctrlHook(max_retries=0).upload_file(RUNTIME, source)
    (request,) = recorder.requests
    parts = {p["name"]: p for p in _multipart(request)}
    assert parts["name"]["payload"].decode() == 'the "final" report.pdf'
    assert set(parts) == {"name", "file"}


def _reference_body(request: dict[str, Any], fields: list[tuple[str, str]], data: bytes, name: str) -> bytes:
    from requests_toolbelt.multipart.encoder import MultipartEncoder

    boundary = request["headers"]["content-type"].split("boundary=", 1)[1]
    return MultipartEncoder(
        fields=[*fields, ("file", (name, io.BytesIO(data), "text/csv"))], boundary=boundary
    ).to_string()


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 3 * 1024 * 1024 + 7])
def test_the_wire_body_is_toolbelts_encoding(recorder: Recorder, tmp_path: Path, size: int) -> None:
    """The file part goes in 1 MiB chunks around toolbelt's framing: the server gets toolbelt's exact encoding."""
    data = os.urandom(size)
    source = tmp_path / "données.csv"
    source.write_bytes(data)
    BctrlHook(max_retries=0).upload_file(RUNTIME, source, runtime_path="inputs/", metadata={"k": "ü"})

    (request,) = recorder.requests
    _check_headers(request, "multipart/form-data; boundary=")
    fields = [("runtimePath", "inputs/"), ("metadata", '{"k":"ü"}')]
    assert request["body"] == _reference_body(request, fields, data, "données.csv")


def test_session_settings_follow_requests_merge_rules(recorder: Recorder) -> None:
    """Requests go through requests' own Session.request, so its merge rules hold: a session header set
    to None is dropped, session params are sent, the session's cookies go along."""
    hook = BctrlHook(max_retries=0)
    session = hook.get_conn()
    session.headers["X-Dropped"] = None  # type: ignore[assignment]  # requests' way to drop a header
    session.headers["x-team"] = "data"
    session.params = {"tenant": "a"}
    session.cookies.set("lb", "node-2", domain="127.0.0.1", path="/")
    hook.whoami()

    (request,) = recorder.requests
    assert request["target"] == "/v1/auth/whoami?tenant=a"
    assert "x-dropped" not in request["headers"]
    assert request["headers"]["x-team"] == "data"
    assert request["headers"]["cookie"] == "lb=node-2"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
