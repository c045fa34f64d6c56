"""The provider registers with Airflow: schema-valid provider info, the entry point, and the CLI listings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import jsonschema

import airflow_provider_bctrl
from airflow_provider_bctrl import get_provider_info


def test_provider_info_is_valid_against_airflows_schema() -> None:
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_matches_the_distribution_and_version() -> None:
    info = get_provider_info()
    dist = distribution("airflow-provider-bctrl")
    assert info["package-name"] == dist.metadata["Name"] == "airflow-provider-bctrl"
    assert info["versions"] == [airflow_provider_bctrl.__version__] == [dist.version]


def test_entry_point_resolves_to_get_provider_info() -> None:
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider")
    ]
    assert entry.load() is get_provider_info


def test_every_declared_module_and_class_imports() -> None:
    import importlib

    info = get_provider_info()
    modules = [
        m
        for group in ("hooks", "operators", "triggers")
        for item in info[group]
        for m in item["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for conn in info["connection-types"]:
        module_name, _, class_name = conn["hook-class-name"].rpartition(".")
        hook_class = getattr(importlib.import_module(module_name), class_name)
        assert hook_class.conn_type == conn["connection-type"]


def _airflow_cli(*args: str) -> str:
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _json_output(*args: str) -> Any:
    """The JSON an ``airflow ... --output json`` command prints: its last line. Airflow 2.11 logs to
    stdout before it (e.g. an executor's CLI commands that do not load under the tests' SQLite)."""
    lines = _airflow_cli(*args).strip().splitlines()
    assert lines, f"airflow {' '.join(args)} printed nothing"
    return json.loads(lines[-1])


def test_airflow_lists_the_provider_and_the_bctrl_hook() -> None:
    providers = _json_output("providers", "list", "--output", "json")
    assert any(p["package_name"] == "airflow-provider-bctrl" for p in providers), providers
    hooks = _json_output("providers", "hooks", "--output", "json")
    (bctrl,) = [h for h in hooks if h["connection_type"] == "bctrl"]
    assert bctrl["class"] == "airflow_provider_bctrl.hooks.bctrl.BctrlHook"
    assert bctrl["package_name"] == "airflow-provider-bctrl"
    assert bctrl["hook_name"] == "BCTRL"
    assert bctrl["conn_id_attribute_name"] == "bctrl_conn_id"
