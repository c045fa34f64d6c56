"""The BCTRL connection form on every Airflow line, through that line's own form mechanism.

- Airflow 3.0-3.3: the api-server's ``GET /ui/connections/hook_meta``, which the React UI renders the
  form from (3.0/3.1 build it from the hook's ``get_connection_form_widgets``/``get_ui_field_behaviour``,
  3.2+ from ``conn-fields``/``ui-field-behaviour`` in the provider info). A connection saved through the
  REST API comes back with its API key masked.
- Airflow 2.11: the Flask UI's form is built from the same hook classmethods through the providers
  manager; the widgets it gets are checked (real WTForms fields, labels, defaults).

No browser: this runs on every leg of the CI matrix. The full browser walk-through (add, Test, edit)
is ``test_connection_ui.py``, on the newest line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from _airflow_process import (
    AIRFLOW_BIN,
    airflow_env,
    free_port,
    run_airflow,
    start_group,
    stop_group,
    wait_for_http,
)

from airflow_provider_bctrl import CONN_FIELDS
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_2_PLUS

KEY = "bctrl_form_Rr5secretJj61"
THREE_X = ("3.0", "3.1", "3.2", "3.3")


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``airflow api-server`` on loopback with all-admins auth; its base URL."""
    home = tmp_path_factory.mktemp("form-airflow-home")
    (home / "dags").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = airflow_env(
        home,
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__BASE_URL=url,
    )
    log_path = home / "api-server.log"
    run_airflow(["db", "migrate"], env, timeout=300)
    process = start_group(
        [AIRFLOW_BIN, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env,
        log_path,
    )
    try:
        wait_for_http(f"{url}/api/v2/monitor/health", process, log_path, timeout=120)
        yield url
    finally:
        stop_group(process)


@pytest.mark.airflow_lines(*THREE_X, reason="Airflow 2.11 has no api-server; its form is checked below")
def test_form_fields_labels_and_masking_from_the_api_server(api_server: str) -> None:
    # The API wants a token: 3.0 and 3.2+ make one for every request under all-admins, 3.1 does not,
    # so ask for it as a client would (GET /auth/token needs no credentials under all-admins).
    token = requests.get(f"{api_server}/auth/token", timeout=(5, 60))
    assert token.status_code == 201, token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = requests.get(f"{api_server}/ui/connections/hook_meta", headers=auth, timeout=(5, 120))
    assert response.status_code == 200, response.text
    (meta,) = [item for item in response.json() if item["connection_type"] == "bctrl"]
    assert meta["hook_name"] == "BCTRL"
    standard = meta["standard_fields"]
    assert standard["host"]["title"] == "API base URL"
    assert standard["host"]["placeholder"] == "https://api.bctrl.ai"
    assert standard["password"]["title"] == "API key"
    assert standard["password"]["hidden"] is False
    for hidden in ("login", "port", "url_schema"):
        assert standard[hidden]["hidden"] is True, hidden

    extra = meta["extra_fields"]
    assert list(extra) == list(CONN_FIELDS)
    for name, declared in CONN_FIELDS.items():
        assert extra[name]["schema"]["title"] == declared["label"], name
        assert extra[name]["description"] == declared["description"], name
    assert "integer" in extra["timeout"]["schema"]["type"]
    assert extra["timeout"]["value"] == 60
    assert extra["max_retries"]["value"] == 3
    assert "boolean" in extra["allow_insecure_http"]["schema"]["type"]
    assert extra["allow_insecure_http"]["value"] is False
    if AIRFLOW_V_3_2_PLUS:  # conn-fields carry JSON Schema ranges; the 3.0/3.1 widget reader drops them
        assert extra["timeout"]["schema"]["minimum"] == 1

    # The API key is masked when the connection is read back.
    body = {
        "connection_id": "bctrl_form",
        "conn_type": "bctrl",
        "host": "http://127.0.0.1:9",
        "password": KEY,
    }
    created = requests.post(f"{api_server}/api/v2/connections", json=body, headers=auth, timeout=(5, 60))
    assert created.status_code == 201, created.text
    read = requests.get(f"{api_server}/api/v2/connections/bctrl_form", headers=auth, timeout=(5, 60))
    assert read.status_code == 200, read.text
    assert KEY not in read.text
    assert read.json()["password"] != KEY


@pytest.mark.airflow_lines("2.11", reason="Airflow 3 reads the form through the api-server (test above)")
def test_form_widgets_on_airflow_2() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets: dict[str, Any] = {
        key.split("__")[-1]: info
        for key, info in manager.connection_form_widgets.items()
        if key.startswith("extra__bctrl__")
    }
    assert list(widgets) == list(CONN_FIELDS)
    for name, declared in CONN_FIELDS.items():
        field = widgets[name].field
        assert field.args[0] == declared["label"], name
        assert field.kwargs["description"] == declared["description"], name
    assert widgets["timeout"].field.field_class.__name__ == "IntegerField"
    assert widgets["timeout"].field.kwargs["default"] == 60
    assert widgets["allow_insecure_http"].field.field_class.__name__ == "BooleanField"
    behaviour = manager.field_behaviours["bctrl"]
    assert behaviour["relabeling"] == {"host": "API base URL", "password": "API key"}
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port"}
