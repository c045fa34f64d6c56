"""The operators' shape, templating declarations, offline rendering and argument checks.

Nothing here talks to BCTRL: these tests cover what happens before the hook is created. Real runs are
in ``tests/e2e``.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from _lines import positional_arguments_error
from _python_child import python_json
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_bctrl.exceptions import BctrlInputError
from airflow_provider_bctrl.operators import BctrlCollectFileOperator as ExportedCollect
from airflow_provider_bctrl.operators import BctrlUploadFileOperator as ExportedUpload
from airflow_provider_bctrl.operators.runtime_files import BctrlCollectFileOperator, BctrlUploadFileOperator
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_1_PLUS

UPLOAD_ARGS = (
    "runtime_id",
    "source",
    "name",
    "runtime_path",
    "destination_path",
    "metadata",
    "source_conn_id",
)
COLLECT_ARGS = ("runtime_id", "path", "space_id", "storage_path", "name", "artifact")


def _upload(**overrides: Any) -> BctrlUploadFileOperator:
    kwargs: dict[str, Any] = {"task_id": "upload", "runtime_id": "rt_1", "source": __file__}
    kwargs.update(overrides)
    return BctrlUploadFileOperator(**kwargs)


def _collect(**overrides: Any) -> BctrlCollectFileOperator:
    kwargs: dict[str, Any] = {"task_id": "collect", "runtime_id": "rt_1", "path": "/tmp/out/results.json"}
    kwargs.update(overrides)
    return BctrlCollectFileOperator(**kwargs)


def test_package_exports_the_operators() -> None:
    assert ExportedUpload is BctrlUploadFileOperator
    assert ExportedCollect is BctrlCollectFileOperator


@pytest.mark.parametrize(
    ("operator", "arguments", "mapping"),
    [
        (BctrlUploadFileOperator, UPLOAD_ARGS, "metadata"),
        (BctrlCollectFileOperator, COLLECT_ARGS, "artifact"),
    ],
)
def test_every_argument_is_templated(operator: type, arguments: tuple[str, ...], mapping: str) -> None:
    assert set(operator.template_fields) == {*arguments, "bctrl_conn_id", "hook_params"}
    # No template_ext: a path such as "query.sql" is a path, never a template file to read.
    assert tuple(operator.template_ext) == ()
    assert operator.template_fields_renderers == {mapping: "json", "hook_params": "json"}
    assert operator.ui_color.startswith("#")


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(positional_arguments_error()):
        BctrlUploadFileOperator("rt_1", __file__, task_id="upload")  # type: ignore[misc]
    with pytest.raises(positional_arguments_error()):
        BctrlCollectFileOperator("rt_1", "/tmp/x", task_id="collect")  # type: ignore[misc]


def test_init_stores_arguments_and_creates_no_hook() -> None:
    # A connection that does not exist: __init__ must not look it up (it runs at every DAG parse).
    op = _upload(
        bctrl_conn_id="no_such_connection",
        name="n.csv",
        runtime_path="in/",
        destination_path="d/n.csv",
        metadata={"k": "v"},
    )
    assert (op.runtime_id, op.source, op.name, op.runtime_path) == ("rt_1", __file__, "n.csv", "in/")
    assert (op.destination_path, op.metadata, op.bctrl_conn_id) == (
        "d/n.csv",
        {"k": "v"},
        "no_such_connection",
    )
    assert "hook" not in vars(op)
    collect = _collect(space_id="sp_1", storage_path="s/r.json", name="r.json", artifact={"kind": "report"})
    assert (collect.space_id, collect.storage_path, collect.name) == ("sp_1", "s/r.json", "r.json")
    assert collect.artifact == {"kind": "report"}
    assert collect.bctrl_conn_id == "bctrl_default"
    assert "hook" not in vars(collect)


def test_hook_is_created_once_for_the_connection() -> None:
    op = _collect(bctrl_conn_id="my_bctrl")
    hook = op.hook
    assert op.hook is hook
    assert hook.bctrl_conn_id == "my_bctrl"
    assert type(hook).__module__ == "airflow_provider_bctrl.hooks.bctrl"


def test_templates_render_recursively_and_keep_non_strings(tmp_path: Path) -> None:
    with DAG("render_offline", schedule=None, start_date=datetime.datetime(2030, 1, 1)):
        upload = _upload(
            runtime_id="{{ params.rt }}",
            source=str(tmp_path) + "/{{ ds_nodash }}/query.sql",
            name="{{ params.prefix }}-{{ ds }}.sql",
            runtime_path="in/{{ ds }}/",
            destination_path="{{ params.prefix }}/{{ ds_nodash }}.sql",
            metadata={
                "day": "{{ ds }}",
                "nested": {"tags": ["{{ params.prefix }}", "x"], "n": 3, "ok": True},
            },
            bctrl_conn_id="{{ params.conn }}",
        )
        collect = _collect(
            runtime_id="{{ params.rt }}",
            path="/tmp/out/{{ ds }}.json",
            space_id="{{ params.space }}",
            storage_path="reports/{{ ds }}.json",
            name="r-{{ ds_nodash }}.json",
            artifact={
                "kind": "{{ params.prefix }}",
                "metadata": {"day": "{{ ds }}", "list": [1, "{{ ds }}"]},
            },
        )
    context: Any = {
        "ds": "2030-01-02",
        "ds_nodash": "20300102",
        "params": {"rt": "rt_9", "prefix": "daily", "conn": "bctrl_other", "space": "sp_2"},
    }

    upload.render_template_fields(context)
    collect.render_template_fields(context)

    assert upload.runtime_id == "rt_9"
    assert upload.source == f"{tmp_path}/20300102/query.sql"  # a path, not the content of a .sql file
    assert upload.name == "daily-2030-01-02.sql"
    assert upload.runtime_path == "in/2030-01-02/"
    assert upload.destination_path == "daily/20300102.sql"
    assert upload.metadata == {"day": "2030-01-02", "nested": {"tags": ["daily", "x"], "n": 3, "ok": True}}
    assert upload.bctrl_conn_id == "bctrl_other"
    assert (collect.runtime_id, collect.path, collect.space_id) == (
        "rt_9",
        "/tmp/out/2030-01-02.json",
        "sp_2",
    )
    assert (collect.storage_path, collect.name) == ("reports/2030-01-02.json", "r-20300102.json")
    assert collect.artifact == {"kind": "daily", "metadata": {"day": "2030-01-02", "list": [1, "2030-01-02"]}}


UPLOAD_BAD = [
    ({"runtime_id": ""}, "runtime_id"),
    ({"runtime_id": "rt/../x"}, "runtime_id"),
    ({"runtime_id": None}, "runtime_id"),
    ({"source": "/nonexistent/bctrl/report.csv"}, "source"),
    ({"source": "."}, "source"),
    ({"name": "a/b.csv"}, "name"),
    ({"name": ""}, "name"),
    ({"runtime_path": "/abs/path.csv"}, "runtime_path"),
    ({"runtime_path": "in/../../x"}, "runtime_path"),
    ({"destination_path": "/abs"}, "destination_path"),
    ({"destination_path": "a/./b"}, "destination_path"),
    ({"metadata": "not a mapping"}, "metadata"),
    ({"metadata": {"when": datetime.datetime(2030, 1, 1)}}, "metadata"),
]

COLLECT_BAD = [
    ({"runtime_id": " rt_1"}, "runtime_id"),
    ({"path": ""}, "path"),
    ({"path": "/tmp/../etc/passwd"}, "path"),
    ({"path": "/tmp/out/"}, "path"),
    ({"space_id": "sp/1"}, "space_id"),
    ({"storage_path": "/abs"}, "storage_path"),
    ({"name": "x" * 256}, "name"),
    ({"artifact": ["report"]}, "artifact"),
    ({"artifact": {"kind": "report", "colour": "red"}}, "artifact"),
    ({"artifact": {"metadata": "text"}}, "artifact"),
]


@pytest.mark.parametrize(("overrides", "argument"), UPLOAD_BAD)
def test_upload_checks_arguments_before_anything_else(overrides: dict[str, Any], argument: str) -> None:
    # The connection does not exist: reaching the hook would raise a connection error instead.
    op = _upload(bctrl_conn_id="no_such_connection", **overrides)
    with pytest.raises(BctrlInputError, match=argument):
        op.execute({})  # type: ignore[arg-type]
    assert "hook" not in vars(op)


@pytest.mark.parametrize(("overrides", "argument"), COLLECT_BAD)
def test_collect_checks_arguments_before_anything_else(overrides: dict[str, Any], argument: str) -> None:
    op = _collect(bctrl_conn_id="no_such_connection", **overrides)
    with pytest.raises(BctrlInputError, match=argument):
        op.execute({})  # type: ignore[arg-type]
    assert "hook" not in vars(op)


def test_object_storage_sources_are_left_to_the_hook() -> None:
    """A URI is not a local path: the operator passes it on, and the hook checks it in object storage."""
    op = _upload(source="s3://exports/2030/report.csv", source_conn_id="aws_default")
    assert op._arguments().source == "s3://exports/2030/report.csv"
    with pytest.raises(BctrlInputError, match="source_conn_id"):
        _upload(source="s3://exports/x.csv", source_conn_id="aws/../x").execute({})  # type: ignore[arg-type]


def test_output_subscript_selects_an_xcom_key() -> None:
    """Why the ids have their own keys: ``output[...]`` picks an XCom key, it does not index the value."""
    with DAG("subscripts", schedule=None, start_date=datetime.datetime(2030, 1, 1)):
        collect = _collect()
    assert collect.output["file_id"].key == "file_id"
    assert collect.output["artifact_id"].key == "artifact_id"
    assert collect.output["file"]["id"].key == "id"  # the pitfall docs/xcom.md warns about


def test_operator_module_imports_cheaply() -> None:
    """DAG files import the operators at every parse: no requests, hook, FastAPI, emulator or OpenLineage."""
    code = (
        "import sys, json\n"
        "import airflow\n"
        "baseline = sorted(sys.modules)\n"
        "import airflow_provider_bctrl.operators.runtime_files\n"
        "import airflow_provider_bctrl.operators.files\n"
        "import airflow_provider_bctrl.operators\n"
        "import airflow_provider_bctrl.assets\n"
        "print(json.dumps([baseline, sorted(sys.modules)]))\n"
    )
    baseline, everything = (set(names) for names in python_json(code, timeout=120))
    # What ``import airflow`` loads, every DAG file pays anyway. Airflow 3.0 itself imports FastAPI there
    # (masking its sensitive settings loads the task runner's comms); from 3.1 on it does not.
    if AIRFLOW_V_3_1_PLUS:
        assert {"fastapi", "starlette"} & baseline == set()
    loaded = everything - baseline
    assert "airflow_provider_bctrl.operators.runtime_files" in loaded
    assert "airflow_provider_bctrl.operators.files" in loaded
    heavy = {
        "requests",
        "requests_toolbelt",
        "urllib3",
        "fastapi",
        "starlette",
        "uvicorn",
        "airflow_provider_bctrl.hooks.bctrl",
        "airflow_provider_bctrl._multipart",
        "airflow_provider_bctrl.testing.emulator",
        # The deferrable wait: the trigger loads in the worker/triggerer only (httpx: Airflow loads it).
        "airflow_provider_bctrl.triggers.bctrl",
        # Lineage classes are imported inside the lineage methods only. (Airflow itself loads the
        # openlineage provider's get_provider_info when it is installed; that is not ours to avoid.)
        "openlineage",
        "openlineage.client",
        "airflow.providers.openlineage.extractors",
        "airflow.providers.common.compat.openlineage.facet",
    }
    assert heavy & loaded == set()
