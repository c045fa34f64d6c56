"""What differs by Airflow line on purpose: version detection, and bctrl:// assets refused on 2.11."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _python_child import python_json

from airflow_provider_bctrl import get_provider_info
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS, airflow_version


def test_version_compat_matches_the_installed_airflow() -> None:
    import airflow

    assert ".".join(map(str, airflow_version())) in airflow.__version__
    assert airflow.__version__.startswith("3.") == AIRFLOW_V_3_0_PLUS


def test_dataset_handler_only_on_airflow_2() -> None:
    info = get_provider_info()
    assert ("dataset-uris" in info) is not AIRFLOW_V_3_0_PLUS
    assert [entry["schemes"] for entry in info["asset-uris"]] == [["bctrl"]]


@pytest.mark.airflow_lines("2.11", reason="Airflow 3 supports bctrl:// assets (tests/test_assets.py)")
def test_bctrl_assets_are_refused_at_parse_time_on_airflow_2(tmp_path: Path) -> None:
    """A DAG declaring a bctrl:// Dataset fails to import, with our message; other DAGs are unaffected."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "with_asset.py").write_text(
        textwrap.dedent(
            """
            from datetime import datetime
            from airflow.providers.common.compat.sdk import DAG, Asset
            from airflow_provider_bctrl.operators import BctrlCollectFileOperator

            with DAG(dag_id="with_asset", schedule=None, start_date=datetime(2024, 1, 1)):
                BctrlCollectFileOperator(
                    task_id="collect", runtime_id="rt", path="/tmp/x.json",
                    outlets=[Asset("bctrl://space1/reports/daily")],
                )
            """
        )
    )
    (dags / "without_asset.py").write_text(
        textwrap.dedent(
            """
            from datetime import datetime
            from airflow.providers.common.compat.sdk import DAG
            from airflow_provider_bctrl.operators import BctrlCollectFileOperator

            with DAG(dag_id="without_asset", schedule=None, start_date=datetime(2024, 1, 1)):
                BctrlCollectFileOperator(task_id="collect", runtime_id="rt", path="/tmp/x.json")
            """
        )
    )
    code = textwrap.dedent(
        """
        import json, sys
        from airflow.models.dagbag import DagBag
        bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
        print(json.dumps({"dags": sorted(bag.dags), "errors": {k.rsplit("/", 1)[-1]: v for k, v in bag.import_errors.items()}}))
        """
    )
    parsed = python_json(code, str(dags))
    assert parsed["dags"] == ["without_asset"]
    assert "BctrlUnsupportedError" in parsed["errors"]["with_asset.py"]
    assert "need Airflow 3.0 or later" in parsed["errors"]["with_asset.py"]


@pytest.mark.airflow_lines("2.11", reason="Airflow 3 supports bctrl:// assets (tests/test_assets.py)")
def test_create_asset_is_refused_on_airflow_2() -> None:
    from airflow_provider_bctrl.assets import create_asset
    from airflow_provider_bctrl.exceptions import BctrlUnsupportedError

    with pytest.raises(BctrlUnsupportedError, match=r"need Airflow 3\.0 or later"):
        create_asset(space_id="space1", path="reports/daily")
