"""The example DAGs import cleanly in a DagBag, without network, Variables or connections at parse time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _python_child import python_json

from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
EXPECTED_DAG_IDS = {
    "bctrl_asset_consumer",
    "bctrl_asset_producer",
    "bctrl_report_pipeline",
    "bctrl_report_taskflow",
    "bctrl_upload_many",
    "bctrl_runtime_lifecycle",
}
#: The examples built on bctrl:// assets: on Airflow 2.11 they refuse at parse time, by design
#: (docs/installation.md, "Assets on 2.11").
ASSET_EXAMPLES = {"bctrl_asset_consumer", "bctrl_asset_producer"}

# Runs in a fresh interpreter so that nothing imported by other tests hides a parse-time import.
_PARSE_SCRIPT = r"""
import json, socket, sys

attempts = []

def refuse(kind):
    def blocked(*args, **kwargs):
        attempts.append(f"{kind} {args[1:2] or args[:1]}")
        raise OSError(f"network access during DAG parsing: {kind}")
    return blocked

socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect_ex")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")

# The guard itself must work, or the test below proves nothing.
try:
    socket.create_connection(("127.0.0.1", 9))
except OSError:
    pass
guard_works = len(attempts) == 1
attempts.clear()

from airflow.providers.common.compat.sdk import BaseHook, Variable

def no_lookup(kind):
    def blocked(*args, **kwargs):
        attempts.append(f"{kind} {args[-1:]}")
        raise RuntimeError(f"{kind} looked up during DAG parsing")
    return classmethod(blocked)

Variable.get = no_lookup("Variable.get")
BaseHook.get_connection = no_lookup("get_connection")

if sys.argv[2] == "3.2+":
    from airflow.dag_processing.dagbag import DagBag
else:
    from airflow.models.dagbag import DagBag

# What Airflow itself imported before any DAG file is parsed (2.11's DagBag brings requests).
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
dags = {
    dag_id: {"tasks": sorted(dag.task_ids), "tags": sorted(dag.tags), "params": sorted(dag.params)}
    for dag_id, dag in bag.dags.items()
}
heavy = [m for m in ("requests", "airflow_provider_bctrl.hooks.bctrl", "airflow_provider_bctrl.testing.emulator")
         if m in sys.modules and m not in before]
print(json.dumps({
    "guard_works": guard_works,
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "attempts": attempts,
    "dags": dags,
    "heavy_modules": heavy,
}))
"""


@pytest.fixture(scope="module")
def parsed() -> dict:
    result: dict = python_json(_PARSE_SCRIPT, str(EXAMPLE_DAGS), "3.2+" if AIRFLOW_V_3_2_PLUS else "older")
    return result


def test_example_dags_import_without_errors(parsed: dict) -> None:
    if AIRFLOW_V_3_0_PLUS:
        assert parsed["import_errors"] == {}
        assert set(parsed["dags"]) == EXPECTED_DAG_IDS
    else:  # 2.11: the asset examples refuse clearly at parse time; the others parse
        errors = {Path(path).stem: text for path, text in parsed["import_errors"].items()}
        assert set(errors) == ASSET_EXAMPLES
        for text in errors.values():
            assert "BctrlUnsupportedError" in text
            assert "need Airflow 3.0 or later" in text
        assert set(parsed["dags"]) == EXPECTED_DAG_IDS - ASSET_EXAMPLES
    for dag_id, info in parsed["dags"].items():
        assert "bctrl" in info["tags"], dag_id
        # Connection and runtime are configuration the user changes, never hard-coded.
        assert {"bctrl_conn_id", "runtime_id"} <= set(info["params"]), dag_id


def test_parsing_touches_no_network_variable_or_connection(parsed: dict) -> None:
    assert parsed["guard_works"] is True
    assert parsed["attempts"] == []
    assert parsed["heavy_modules"] == []


def test_example_dags_do_not_import_the_emulator_or_hold_secrets() -> None:
    for path in sorted(EXAMPLE_DAGS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "testing.emulator" not in text, path.name
        assert "BctrlEmulator" not in text, path.name
        assert "password" not in text.lower(), path.name
        assert not re.search(r"bctrl_(?:live|test|sk)_", text), f"{path.name} looks like it holds an API key"
