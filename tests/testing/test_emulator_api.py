"""The emulator's /v1 API over real HTTP: happy paths, error codes, path rules, and the contract schemas."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from test_emulator_support import (
    BOUNDARY,
    assert_error,
    assert_matches_schema,
    auth,
    collect,
    form,
    get,
    post_json,
    runtime_root,
    scratch_is_empty,
    session,
    sha256,
    upload,
)

from airflow_provider_bctrl.testing.emulator import BctrlEmulator

COLLECT_DOC = "collect-file.yaml"


def stored_ids(emu: BctrlEmulator) -> set[str]:
    return {f["id"] for f in emu.stored_files()}


# --------------------------------------------------------------------------------------- upload


def test_upload_stores_once_and_materialises_in_workspace(emu: BctrlEmulator, runtime_id: str) -> None:
    data = b"id,total\n1,42\n"
    response = upload(
        emu,
        runtime_id,
        data,
        filename="q3.csv",
        before={"runtimePath": "reports/", "metadata": '{"quarter": "Q3"}'},
    )
    assert response.status_code == 200, response.text
    staged = response.json()
    assert_matches_schema(staged, "RuntimeStagedFile")
    assert staged["name"] == "q3.csv"
    assert staged["runtimePath"] == "reports/q3.csv"
    assert staged["runtimeId"] == runtime_id
    assert staged["sizeBytes"] == len(data)
    assert staged["expiresAt"].endswith("Z")
    assert response.headers["X-Request-Id"].startswith("req_")

    # Decision 1: the returned id is the durable file id, stored once with source "upload".
    stored = [f for f in emu.stored_files() if f["id"] == staged["id"]]
    assert len(stored) == 1
    assert stored[0]["source"] == "upload"
    assert stored[0]["sha256"] == sha256(data)
    assert stored[0]["spaceId"] == emu.space_id
    assert emu.read_runtime_file(runtime_id, "/workspace/reports/q3.csv") == data
    assert emu.read_runtime_file(runtime_id, "reports/q3.csv") == data

    meta = get(emu, f"/v1/files/{staged['id']}").json()
    assert meta["metadata"] == {"quarter": "Q3"}
    assert meta["contentType"] == "text/csv"
    assert scratch_is_empty(emu)


def test_upload_fields_after_the_file_part(emu: BctrlEmulator, runtime_id: str) -> None:
    response = upload(
        emu,
        runtime_id,
        b"late fields",
        filename="ignored.txt",
        after={"name": "renamed.txt", "runtimePath": "in/out/", "destinationPath": f"d/{uuid.uuid4()}.txt"},
    )
    assert response.status_code == 200, response.text
    staged = response.json()
    assert staged["name"] == "renamed.txt"
    assert staged["runtimePath"] == "in/out/renamed.txt"
    assert emu.read_runtime_file(runtime_id, "/workspace/in/out/renamed.txt") == b"late fields"


def test_upload_defaults_to_the_file_name_at_the_workspace_root(emu: BctrlEmulator, runtime_id: str) -> None:
    staged = upload(emu, runtime_id, b"x", filename="plain.bin").json()
    assert staged["runtimePath"] == "plain.bin"
    record = get(emu, f"/v1/files/{staged['id']}").json()
    assert record["path"] == f"uploads/{staged['id']}/plain.bin"
    assert "metadata" not in record


def test_upload_with_explicit_runtime_path_and_destination(emu: BctrlEmulator, runtime_id: str) -> None:
    destination = f"inbox/{uuid.uuid4()}/report.pdf"
    staged = upload(
        emu,
        runtime_id,
        b"%PDF",
        filename="r.pdf",
        before={"runtimePath": "a/b/c.pdf", "destinationPath": destination},
    ).json()
    assert staged["runtimePath"] == "a/b/c.pdf"
    assert staged["name"] == "r.pdf"
    assert get(emu, f"/v1/files/{staged['id']}").json()["path"] == destination


def test_upload_streams_a_chunked_body(emu: BctrlEmulator, runtime_id: str) -> None:
    chunks = [os.urandom(100_000) for _ in range(20)]
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            data=form(iter(chunks), filename="big.bin", after={"runtimePath": "big.bin"}),
            headers={**auth(emu), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    assert response.json()["sizeBytes"] == 2_000_000
    entry = next(e for e in emu.requests_log() if e["requestId"] == response.headers["X-Request-Id"])
    assert entry["transferEncoding"] == "chunked"
    stored = next(f for f in emu.stored_files() if f["id"] == response.json()["id"])
    assert stored["sha256"] == sha256(b"".join(chunks))


def test_upload_with_requests_toolbelt_encoder(emu: BctrlEmulator, runtime_id: str) -> None:
    from requests_toolbelt import MultipartEncoder

    encoder = MultipartEncoder(
        fields={"name": "tb.txt", "file": ("tb.txt", b"toolbelt", "text/plain"), "metadata": '{"k": [1, 2]}'}
    )
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            data=encoder,
            headers={**auth(emu), "Content-Type": encoder.content_type},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    assert emu.read_runtime_file(runtime_id, "tb.txt") == b"toolbelt"


def test_upload_unicode_file_name(emu: BctrlEmulator, runtime_id: str) -> None:
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            files={"file": ("résumé ü.txt", b"cv")},
            headers=auth(emu),
            timeout=30,
        )
    assert response.status_code == 200, response.text
    staged = response.json()
    assert staged["name"] == "résumé ü.txt"
    content = get(emu, f"/v1/files/{staged['id']}/content")
    assert (
        content.headers["Content-Disposition"] == "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%C3%BC.txt"
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"runtimePath": "/etc/passwd"}, "runtime_file.path_invalid"),
        ({"runtimePath": "../escape.txt"}, "runtime_file.path_invalid"),
        ({"runtimePath": "a/../../escape.txt"}, "runtime_file.path_invalid"),
        ({"runtimePath": "a\\..\\..\\x"}, "runtime_file.path_invalid"),
        ({"runtimePath": "C:/x.txt"}, "runtime_file.path_invalid"),
        ({"runtimePath": "a/" * 2100}, "runtime_file.path_invalid"),
        ({"destinationPath": "/abs/x"}, "storage_file.path_invalid"),
        ({"destinationPath": "a/../x"}, "storage_file.path_invalid"),
        ({"destinationPath": "./x"}, "storage_file.path_invalid"),
        ({"name": "a/b.txt"}, "request.invalid"),
        ({"name": "n" * 256}, "request.invalid"),
        ({"metadata": "[1, 2]"}, "request.invalid"),
        ({"metadata": "{not json"}, "request.invalid"),
    ],
)
def test_upload_rejects_bad_fields(
    emu: BctrlEmulator, runtime_id: str, fields: dict[str, str], code: str
) -> None:
    before = stored_ids(emu)
    response = upload(emu, runtime_id, b"payload", after=fields)
    assert_error(response, 400, code, "invalid_input")
    assert stored_ids(emu) == before
    assert scratch_is_empty(emu)


def test_upload_rejects_nul_in_runtime_path(emu: BctrlEmulator, runtime_id: str) -> None:
    response = upload(emu, runtime_id, b"x", before={"runtimePath": "a\x00b"})
    assert_error(response, 400, "runtime_file.path_invalid")


def test_upload_without_file_part(emu: BctrlEmulator, runtime_id: str) -> None:
    body = assert_error(upload(emu, runtime_id, None, before={"name": "x"}), 400, "request.invalid")
    assert "file" in body["error"]


def test_upload_not_multipart(emu: BctrlEmulator, runtime_id: str) -> None:
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload", data=b"raw", headers=auth(emu), timeout=30
        )
    assert_error(response, 400, "request.invalid")


def test_upload_truncated_body_leaves_nothing(emu: BctrlEmulator, runtime_id: str) -> None:
    before = stored_ids(emu)
    body = b"".join(form([b"x" * 50_000]))[:-30]  # no closing boundary
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            data=body,
            headers={**auth(emu), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=30,
        )
    assert_error(response, 400, "request.invalid")
    assert stored_ids(emu) == before
    assert scratch_is_empty(emu)


def test_upload_oversized_field(emu: BctrlEmulator, runtime_id: str) -> None:
    assert_error(upload(emu, runtime_id, b"x", before={"metadata": "x" * 70_000}), 400, "request.invalid")
    assert scratch_is_empty(emu)


def test_upload_duplicate_destination_path(emu: BctrlEmulator, runtime_id: str) -> None:
    destination = f"dupes/{uuid.uuid4()}.txt"
    assert upload(emu, runtime_id, b"1", before={"destinationPath": destination}).status_code == 200
    before = stored_ids(emu)
    assert_error(
        upload(emu, runtime_id, b"2", before={"destinationPath": destination}),
        409,
        "storage_file.path_exists",
        "conflict",
    )
    assert stored_ids(emu) == before


def test_upload_unknown_runtime(emu: BctrlEmulator) -> None:
    assert_error(upload(emu, str(uuid.uuid4()), b"x"), 404, "runtime.not_found", "not_found")
    assert scratch_is_empty(emu)


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic abc", "Bearer"])
def test_auth_required(emu: BctrlEmulator, runtime_id: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{runtime_id}/files/upload",
            data=b"".join(form([b"x" * 100_000])),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **headers},
            timeout=30,
        )
        whoami = s.get(f"{emu.url}/v1/auth/whoami", headers=headers, timeout=30)
    body = assert_error(response, 401, "auth.required", "unauthorized")
    assert emu.api_key not in response.text
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert_error(whoami, 401, "auth.required", "unauthorized")


def test_symlink_out_of_the_runtime_is_refused(emu: BctrlEmulator, runtime_id: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read")
    workspace = runtime_root(emu, runtime_id) / "workspace"
    (workspace / "evil").symlink_to(outside)
    (workspace / "evil-file.txt").symlink_to(outside / "secret.txt")

    assert_error(
        upload(emu, runtime_id, b"x", before={"runtimePath": "evil/planted.txt"}),
        400,
        "runtime_file.path_invalid",
    )
    assert_error(collect(emu, runtime_id, {"path": "evil/secret.txt"}), 400, "runtime_file.path_invalid")
    assert_error(
        collect(emu, runtime_id, {"path": "/workspace/evil-file.txt"}), 400, "runtime_file.path_invalid"
    )
    with session() as s:
        put = s.put(
            f"{emu.url}/_emulator/runtimes/{runtime_id}/fs", params={"path": "evil/x"}, data=b"x", timeout=30
        )
    assert put.status_code == 400
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_symlink_inside_the_runtime_is_followed(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file(runtime_id, "/tmp/real/out.txt", b"inside")
    (runtime_root(emu, runtime_id) / "workspace" / "link").symlink_to(
        runtime_root(emu, runtime_id) / "tmp" / "real"
    )
    response = collect(emu, runtime_id, {"path": "link/out.txt"})
    assert response.status_code == 200, response.text


def test_later_runtime_writes_do_not_change_the_stored_copy(emu: BctrlEmulator, runtime_id: str) -> None:
    staged = upload(emu, runtime_id, b"original", filename="shared.txt").json()
    emu.write_runtime_file(runtime_id, "shared.txt", b"changed by the browser")
    assert get(emu, f"/v1/files/{staged['id']}/content").content == b"original"


# -------------------------------------------------------------------------------------- collect


def test_collect_with_artifact(emu: BctrlEmulator, runtime_id: str) -> None:
    data = b'{"rows": 3}'
    written = emu.write_runtime_file(runtime_id, "/tmp/runtime/output/results.json", data)
    assert written == {"path": "/tmp/runtime/output/results.json", "sizeBytes": len(data)}
    response = collect(
        emu,
        runtime_id,
        {"path": "/tmp/runtime/output/results.json", "artifact": {"kind": "report", "metadata": {"a": 1}}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema(body, "spaces_runtimesFilesCollect_Response_200", COLLECT_DOC)
    file, artifact = body["file"], body["artifact"]
    assert file["name"] == "results.json"
    assert file["path"] == f"collected/{file['id']}/results.json"
    assert file["contentType"] == "application/json"
    assert file["sizeBytes"] == len(data)
    assert artifact["fileId"] == file["id"]
    assert artifact["kind"] == "report"
    assert artifact["name"] == "results.json"
    assert artifact["runtimeId"] == runtime_id
    stored = next(f for f in emu.stored_files() if f["id"] == file["id"])
    assert stored["source"] == "runtime"
    assert stored["sha256"] == sha256(data)
    assert get(emu, f"/v1/files/{file['id']}/content").content == data
    assert any(a["id"] == artifact["id"] and a["metadata"] == {"a": 1} for a in emu.artifacts())


def test_collect_without_artifact_relative_path_and_custom_names(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.write_runtime_file(runtime_id, "out/page.png", b"\x89PNG")
    storage_path = f"shots/{uuid.uuid4()}.png"
    body = collect(
        emu, runtime_id, {"path": "out/page.png", "storagePath": storage_path, "name": "shot.png"}
    ).json()
    assert_matches_schema(body, "spaces_runtimesFilesCollect_Response_200", COLLECT_DOC)
    assert body["artifact"] is None
    assert body["file"]["path"] == storage_path
    assert body["file"]["name"] == "shot.png"
    assert body["file"]["contentType"] == "image/png"
    assert_error(
        collect(emu, runtime_id, {"path": "out/page.png", "storagePath": storage_path}),
        409,
        "storage_file.path_exists",
        "conflict",
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"path": "/nope.txt"}, 404, "runtime_file.not_found"),
        ({"path": "/workspace"}, 404, "runtime_file.not_found"),
        ({"path": "/workspace/file.txt/child"}, 404, "runtime_file.not_found"),
        ({"path": "../../etc/passwd"}, 400, "runtime_file.path_invalid"),
        ({"path": "/workspace/../../etc/passwd"}, 400, "runtime_file.path_invalid"),
        ({"path": "file.txt", "storagePath": "../x"}, 400, "storage_file.path_invalid"),
        ({"path": "file.txt", "storagePath": "/x"}, 400, "storage_file.path_invalid"),
        ({"path": "file.txt", "name": "a/b"}, 400, "request.invalid"),
        ({"path": 5}, 400, "request.invalid"),
        ({}, 400, "request.invalid"),
        ({"path": "file.txt", "artifact": "yes"}, 400, "request.invalid"),
        ({"path": "file.txt", "artifact": {"metadata": [1]}}, 400, "request.invalid"),
        ([1, 2], 400, "request.invalid"),
    ],
)
def test_collect_errors(emu: BctrlEmulator, runtime_id: str, body: object, status: int, code: str) -> None:
    emu.write_runtime_file(runtime_id, "file.txt", b"x")
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/spaces/{emu.space_id}/runtimes/{runtime_id}/files/collect",
            json=body,
            headers=auth(emu),
            timeout=30,
        )
    assert_error(response, status, code)


def test_collect_fifo_is_not_a_file(emu: BctrlEmulator, runtime_id: str) -> None:
    os.mkfifo(runtime_root(emu, runtime_id) / "workspace" / "pipe")
    assert_error(collect(emu, runtime_id, {"path": "pipe"}), 404, "runtime_file.not_found")


def test_collect_malformed_json(emu: BctrlEmulator, runtime_id: str) -> None:
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/spaces/{emu.space_id}/runtimes/{runtime_id}/files/collect",
            data=b"{nope",
            headers={**auth(emu), "Content-Type": "application/json"},
            timeout=30,
        )
    assert_error(response, 400, "request.invalid", "invalid_input")


def test_collect_unknown_space_and_foreign_runtime(emu: BctrlEmulator, runtime_id: str) -> None:
    assert_error(
        collect(emu, runtime_id, {"path": "x"}, space_id=str(uuid.uuid4())),
        404,
        "space.not_found",
        "not_found",
    )
    other_space = str(uuid.uuid4())
    foreign = emu.create_runtime(space_id=other_space)
    assert_error(collect(emu, foreign, {"path": "x"}), 404, "runtime.not_found")
    assert_error(collect(emu, str(uuid.uuid4()), {"path": "x"}), 404, "runtime.not_found")
    emu.write_runtime_file(foreign, "x", b"in the other space")
    body = collect(emu, foreign, {"path": "x"}, space_id=other_space).json()
    assert [f["spaceId"] for f in emu.stored_files() if f["id"] == body["file"]["id"]] == [other_space]


# ---------------------------------------------------------------------------------------- stage


def test_stage_a_stored_file_into_another_runtime(emu: BctrlEmulator, runtime_id: str) -> None:
    staged = upload(emu, runtime_id, b"shared bytes", filename="s.txt").json()
    other = emu.create_runtime()
    before = stored_ids(emu)
    response = post_json(
        emu, f"/v1/runtimes/{other}/files/stage", {"fileId": staged["id"], "runtimePath": "in/"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema(body, "RuntimeStagedFile")
    assert body["id"] == staged["id"]
    assert body["runtimePath"] == "in/s.txt"
    assert body["runtimeId"] == other
    assert emu.read_runtime_file(other, "in/s.txt") == b"shared bytes"
    assert stored_ids(emu) == before  # staging never creates a durable file

    renamed = post_json(
        emu, f"/v1/runtimes/{other}/files/stage", {"fileId": staged["id"], "name": "r.txt"}
    ).json()
    assert renamed["runtimePath"] == "r.txt"


def test_stage_errors(emu: BctrlEmulator, runtime_id: str) -> None:
    staged = upload(emu, runtime_id, b"x").json()
    assert_error(
        post_json(emu, f"/v1/runtimes/{runtime_id}/files/stage", {"fileId": str(uuid.uuid4())}),
        404,
        "file.not_found",
    )
    assert_error(
        post_json(emu, f"/v1/runtimes/{uuid.uuid4()}/files/stage", {"fileId": staged["id"]}),
        404,
        "runtime.not_found",
    )
    assert_error(post_json(emu, f"/v1/runtimes/{runtime_id}/files/stage", {}), 400, "request.invalid")
    assert_error(
        post_json(
            emu, f"/v1/runtimes/{runtime_id}/files/stage", {"fileId": staged["id"], "runtimePath": "/abs"}
        ),
        400,
        "runtime_file.path_invalid",
    )
    emu.write_runtime_file(runtime_id, "dir/inner.txt", b"x")
    assert_error(
        post_json(
            emu, f"/v1/runtimes/{runtime_id}/files/stage", {"fileId": staged["id"], "runtimePath": "dir"}
        ),
        409,
        "runtime_file.path_conflict",
        "conflict",
    )


# ------------------------------------------------------------------------------ files and listing


def test_file_metadata_and_content(emu: BctrlEmulator, runtime_id: str) -> None:
    data = os.urandom(300_000)
    staged = upload(emu, runtime_id, data, filename="blob.bin").json()
    record = get(emu, f"/v1/files/{staged['id']}").json()
    assert set(record) >= {
        "id", "name", "path", "contentType", "sizeBytes", "createdAt", "downloadUrl",
        "source", "spaceId", "runId", "runtimeId", "expiresAt",
    }  # fmt: skip
    assert record["downloadUrl"] == f"{emu.url}/v1/files/{staged['id']}/content"
    assert record["source"] == "upload"
    assert record["runtimeId"] == runtime_id
    uuid.UUID(record["runId"])
    with session() as s:
        content = s.get(record["downloadUrl"], headers=auth(emu), timeout=30, stream=True)
        assert content.status_code == 200
        assert content.headers["Content-Type"] == "application/octet-stream"
        assert content.headers["Content-Length"] == str(len(data))
        assert content.headers["Content-Disposition"] == "attachment; filename*=UTF-8''blob.bin"
        assert b"".join(content.iter_content(65536)) == data
    assert_error(get(emu, f"/v1/files/{uuid.uuid4()}"), 404, "file.not_found", "not_found")
    assert_error(get(emu, f"/v1/files/{uuid.uuid4()}/content"), 404, "file.not_found", "not_found")


def test_list_runtime_files_pages(emu: BctrlEmulator, runtime_id: str) -> None:
    names = [f"f{i}.json" for i in range(5)] + ["shot.png"]
    for name in names:
        emu.write_runtime_file(runtime_id, name, b"{}")
        assert collect(emu, runtime_id, {"path": name}).status_code == 200
    upload(emu, runtime_id, b"uploads are not listed")

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = get(emu, f"/v1/runtimes/{runtime_id}/files", params=params).json()
        assert len(page["data"]) <= 4
        seen += [f["name"] for f in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(names)
    first = get(emu, f"/v1/runtimes/{runtime_id}/files").json()
    assert first["nextCursor"] is None
    assert len(first["data"]) == 6
    assert [
        f["name"]
        for f in get(emu, f"/v1/runtimes/{runtime_id}/files", params={"type": "image"}).json()["data"]
    ] == ["shot.png"]

    for bad in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"cursor": "garbage!"}):
        assert_error(get(emu, f"/v1/runtimes/{runtime_id}/files", params=bad), 400, "request.invalid")
    assert_error(get(emu, f"/v1/runtimes/{uuid.uuid4()}/files"), 404, "runtime.not_found")


# ------------------------------------------------------------------------------------- whoami etc.


def test_whoami(emu: BctrlEmulator) -> None:
    body = get(emu, "/v1/auth/whoami").json()
    assert body["defaultSpaceId"] == emu.space_id
    assert body["scope"] == "organization"
    assert body["subaccountId"] is None
    assert emu.api_key not in body["keyId"]
    assert set(body) == {
        "defaultSpaceId",
        "email",
        "keyId",
        "organizationId",
        "plan",
        "scope",
        "subaccountId",
    }
    with session() as s:
        sub = s.get(
            f"{emu.url}/v1/auth/whoami", headers=auth(emu, **{"BCTRL-Subaccount-Id": "sub_123"}), timeout=30
        )
    assert sub.json()["scope"] == "subaccount"
    assert sub.json()["subaccountId"] == "sub_123"


def test_unknown_routes_and_methods(emu: BctrlEmulator) -> None:
    assert_error(get(emu, "/v1/nothing/here"), 404, "route.not_found", "not_found")
    assert_error(get(emu, "/elsewhere"), 404, "route.not_found")
    with session() as s:
        response = s.delete(f"{emu.url}/v1/auth/whoami", headers=auth(emu), timeout=30)
    assert_error(response, 405, "route.method_not_allowed")
    assert response.headers["Allow"] == "GET"


def test_request_log(emu: BctrlEmulator, runtime_id: str) -> None:
    emu.clear_requests_log()
    response = upload(
        emu,
        runtime_id,
        b"logged",
        filename="log.txt",
        before={"name": "log.txt"},
        after={"metadata": "{}"},
        headers={"BCTRL-Subaccount-Id": "sub_9", "User-Agent": "emulator-tests/1"},
    )
    with session() as s:
        s.post(
            f"{emu.url}/v1/spaces/{emu.space_id}/runtimes/{runtime_id}%2Fx/files/collect",
            json={"path": "a"},
            headers=auth(emu),
            timeout=30,
        )
    entries = emu.requests_log()
    assert len(entries) == 2
    first, second = entries
    assert first["route"] == "upload"
    assert first["status"] == 200
    assert first["requestId"] == response.headers["X-Request-Id"]
    assert first["formParts"] == ["name", "file", "metadata"]
    assert first["formFields"] == {"name": "log.txt", "metadata": "{}"}
    assert first["fileName"] == "log.txt"
    assert first["fileContentType"] == "application/octet-stream"
    assert first["subaccountId"] == "sub_9"
    assert first["userAgent"] == "emulator-tests/1"
    assert first["contentLength"] > 0
    assert first["json"] is None
    assert first["fault"] is None
    assert second["path"].endswith(f"{runtime_id}%2Fx/files/collect")
    assert second["json"] == {"path": "a"}
    assert second["status"] == 404
    assert emu.api_key not in repr(entries)
    emu.clear_requests_log()
    assert emu.requests_log() == []


# ---------------------------------------------------------------------------------- control API


def test_control_runtimes(emu: BctrlEmulator) -> None:
    runtime_id = f"rt_{uuid.uuid4().hex[:8]}"
    assert emu.create_runtime(runtime_id) == runtime_id
    with session() as s:
        again = s.post(f"{emu.url}/_emulator/runtimes", json={"runtimeId": runtime_id}, timeout=30)
        bad = s.post(f"{emu.url}/_emulator/runtimes", json={"runtimeId": "../x"}, timeout=30)
        missing = s.get(f"{emu.url}/_emulator/runtimes/{runtime_id}/fs", params={"path": "none"}, timeout=30)
    assert again.status_code == 409
    assert bad.status_code == 400
    assert missing.status_code == 404
    assert missing.json()["code"] == "runtime_file.not_found"
    uuid.UUID(emu.create_runtime())


def test_airflow_connection_json(emu: BctrlEmulator) -> None:
    import json

    plain = json.loads(emu.airflow_connection_json())
    assert plain == {"conn_type": "bctrl", "host": emu.url, "password": emu.api_key}
    extra = json.loads(emu.airflow_connection_json({"space_id": "s"}))
    assert extra["extra"] == {"space_id": "s"}
    assert emu.url.startswith("http://127.0.0.1:")
    assert not emu.url.endswith("/")


# ------------------------------------------------------------------------------------- robustness


def test_rejected_big_upload_is_drained_so_the_client_sees_the_error(emu: BctrlEmulator) -> None:
    block = b"\0" * (1024 * 1024)
    with session() as s:
        response = s.post(
            f"{emu.url}/v1/runtimes/{uuid.uuid4()}/files/upload",
            data=form(iter([block] * 32), filename="big.bin"),
            headers={**auth(emu), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=60,
        )
    assert_error(response, 404, "runtime.not_found")
    assert scratch_is_empty(emu)


def test_client_vanishing_mid_upload_leaves_nothing(emu: BctrlEmulator, runtime_id: str) -> None:
    import socket
    import time

    before = stored_ids(emu)
    host, port = emu.url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/runtimes/{runtime_id}/files/upload HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {emu.api_key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 10000000\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"".join(form([b"x" * 3_000_000]))[:2_000_000])
        time.sleep(0.2)
    for _ in range(100):  # bounded wait for the server to notice
        if scratch_is_empty(emu):
            break
        time.sleep(0.05)
    assert scratch_is_empty(emu)
    assert stored_ids(emu) == before
    assert upload(emu, runtime_id, b"still fine").status_code == 200


def test_concurrent_uploads(emu: BctrlEmulator, runtime_id: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    payloads = [os.urandom(500_000 + i) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(lambda p: upload(emu, runtime_id, p[1], filename=f"c{p[0]}.bin"), enumerate(payloads))
        )
    assert [r.status_code for r in responses] == [200] * 6
    by_id = {f["id"]: f for f in emu.stored_files()}
    for response, payload in zip(responses, payloads, strict=True):
        assert by_id[response.json()["id"]]["sha256"] == sha256(payload)
