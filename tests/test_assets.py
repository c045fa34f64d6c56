"""The ``bctrl://`` asset URI scheme: registration, the sanitiser, the factory and the OpenLineage converter."""

from __future__ import annotations

import importlib
import urllib.parse

import pytest
from _lines import AIRFLOW_3_LINES
from airflow.providers.common.compat.sdk import Asset

from airflow_provider_bctrl import get_provider_info
from airflow_provider_bctrl.assets import (
    asset_uri,
    convert_asset_to_openlineage,
    create_asset,
    parse_asset_uri,
    sanitize_uri,
)
from airflow_provider_bctrl.exceptions import BctrlInputError
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_1_PLUS

pytestmark = pytest.mark.airflow_lines(
    *AIRFLOW_3_LINES,
    reason="bctrl:// assets need Airflow 3; 2.11 refuses them (test_airflow_lines.py)",
)

SPACE = "5b0e6c1e-3f7a-4d0e-9a51-2f1c7d9e8a10"


def _resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_provider_info_registers_the_bctrl_scheme() -> None:
    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["bctrl"]
    assert _resolve(entry["handler"]) is sanitize_uri
    assert _resolve(entry["factory"]) is create_asset
    assert _resolve(entry["to_openlineage_converter"]) is convert_asset_to_openlineage


def test_airflow_discovers_the_scheme() -> None:
    """What the task runtime (and DAG parsing) actually uses, found through the entry point."""
    from _lines import runtime_providers_manager

    manager = runtime_providers_manager()
    assert manager.asset_uri_handlers["bctrl"] is sanitize_uri
    assert manager.asset_factories["bctrl"] is create_asset
    assert manager.asset_to_openlineage_converters["bctrl"] is convert_asset_to_openlineage


@pytest.mark.parametrize(
    ("uri", "normalised"),
    [
        (f"bctrl://{SPACE}/reports/daily", f"bctrl://{SPACE}/reports/daily"),
        (f"bctrl://{SPACE}/reports/daily/", f"bctrl://{SPACE}/reports/daily"),  # Airflow strips the slash
        (f"BCTRL://{SPACE}/reports/2030-01-01.json", f"bctrl://{SPACE}/reports/2030-01-01.json"),
        ("bctrl://sp_Abc/r.json", "bctrl://sp_Abc/r.json"),  # ids are case-sensitive: kept as written
        (f"bctrl://{SPACE}/reports/daily#frag", f"bctrl://{SPACE}/reports/daily"),  # Airflow drops fragments
    ],
)
def test_valid_uris_make_assets(uri: str, normalised: str) -> None:
    assert Asset(uri).uri == normalised


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("bctrl:///reports/daily", "space id .* is missing"),
        (f"bctrl://{SPACE}", "storage path after the space id is missing"),
        (f"bctrl://{SPACE}/", "storage path after the space id is missing"),
        (f"bctrl://{SPACE}/reports/../secrets", r"may not contain empty, '\.' or '\.\.' segments"),
        (f"bctrl://{SPACE}/./reports", r"'\.' or '\.\.' segments"),
        (f"bctrl://{SPACE}/reports//daily", "empty"),
        (f"bctrl://{SPACE}/reports?version=2", "query string"),
        ("bctrl://space:8080/reports", "may not contain ':' or '@'"),
        ("bctrl://sp%2Fx/reports", "not a valid id"),
    ],
)
def test_invalid_uris_are_refused_with_a_clear_error(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Asset(uri)
    assert "Expected the form bctrl://<space_id>/" in str(caught.value)


def test_user_info() -> None:
    """A user name alone is refused; with a password Airflow itself drops both (and warns) first.

    Airflow 3.0 drops any user info, with its own warning, before our handler sees the URI: there the
    asset becomes the same URI without it (a known difference, docs/installation.md).
    """
    if AIRFLOW_V_3_1_PLUS:
        with pytest.raises(ValueError, match="may not contain ':' or '@'"):
            Asset(f"bctrl://someone@{SPACE}/reports/daily")
    else:
        with pytest.warns(UserWarning, match="auth info"):
            assert Asset(f"bctrl://someone@{SPACE}/reports/daily").uri == f"bctrl://{SPACE}/reports/daily"
    with pytest.warns(UserWarning, match="password" if AIRFLOW_V_3_1_PLUS else "auth info"):
        asset = Asset(f"bctrl://someone:secret@{SPACE}/reports/daily")
    assert asset.uri == f"bctrl://{SPACE}/reports/daily"


def test_sanitiser_alone_refuses_fragments_and_keeps_case() -> None:
    with pytest.raises(ValueError, match="fragment"):
        sanitize_uri(urllib.parse.urlsplit(f"bctrl://{SPACE}/a#b"))
    parts = urllib.parse.urlsplit("bctrl://Sp_1/A/B.csv")
    assert sanitize_uri(parts) == parts


def test_factory_builds_the_asset() -> None:
    asset = create_asset(space_id=SPACE, path="reports/daily", extra={"owner": "reports-team"})
    assert isinstance(asset, Asset)
    assert asset.uri == f"bctrl://{SPACE}/reports/daily"
    assert asset.name == asset.uri
    assert asset.extra == {"owner": "reports-team"}
    assert asset == Asset(f"bctrl://{SPACE}/reports/daily", extra={"owner": "reports-team"})
    assert asset_uri(SPACE, "reports/daily/") == f"bctrl://{SPACE}/reports/daily"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space_id": "", "path": "a"}, "space_id is empty"),
        ({"space_id": "a/b", "path": "a"}, "space_id .* is not a valid id"),
        ({"space_id": SPACE, "path": "/abs/path"}, "must be relative"),
        ({"space_id": SPACE, "path": "a/../b"}, r"may not contain '\.' or '\.\.' segments"),
        ({"space_id": SPACE, "path": ""}, "path is empty"),
    ],
)
def test_factory_refuses_bad_arguments(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(BctrlInputError, match=message):
        create_asset(**kwargs)


def test_parse_asset_uri_round_trips() -> None:
    assert parse_asset_uri(f"bctrl://{SPACE}/reports/daily/2030.json") == (SPACE, "reports/daily/2030.json")
    with pytest.raises(ValueError, match="not a BCTRL asset URI"):
        parse_asset_uri("s3://bucket/key")
    with pytest.raises(ValueError, match="storage path"):
        parse_asset_uri(f"bctrl://{SPACE}")


def test_openlineage_converter_uses_the_space_namespace() -> None:
    dataset = convert_asset_to_openlineage(Asset(f"bctrl://{SPACE}/reports/daily"), None)
    assert (dataset.namespace, dataset.name) == (f"bctrl://{SPACE}", "reports/daily")


def test_openlineage_provider_translates_bctrl_assets() -> None:
    """The OpenLineage provider finds our converter through Airflow (it turns inlets/outlets into datasets)."""
    from airflow.providers.openlineage.utils import utils  # installed by the test extra: no skip

    dataset = utils.translate_airflow_asset(Asset(f"bctrl://{SPACE}/reports/daily"), None)
    assert dataset is not None
    assert (dataset.namespace, dataset.name) == (f"bctrl://{SPACE}", "reports/daily")
