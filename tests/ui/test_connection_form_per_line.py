"""The BCTRL connection form on every Airflow line, through that line's own form mechanism.

- Airflow 3.0-3.3: the api-server's ``GET /ui/connections/hook_meta``, which the React UI renders the
  form from (3.0/3.1 build it from the hook's ``get_connection_form_widgets``/``get_ui_field_behaviour``,
  3.2+ from ``conn-fields``/``ui-field-behaviour`` in the provider info). A connection saved through the
  REST API comes back with its API key masked.
- Airflow 2.11: the Flask UI's form is built from the same hook classmethods through the providers
  manager; the widgets it gets are checked (real WTForms fields, labels, defaults).

On 3.0, 3.1 and 3.2 the form is also opened in Debian's Chromium (``ui_form`` marker, which
``make test-matrix`` selects): the React UI of that line's api-server renders the BCTRL type's fields
with our labels, the API key in a password input, and shows a saved key only masked. The full browser
walk-through on the newest line (add, Test, edit) is ``test_connection_ui.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from _airflow_process import running_api_server
from _browser import add_bctrl_connection, chromium, edit_bctrl_connection, open_section, save_connection
from _process_group import log_tail

from airflow_provider_bctrl import CONN_FIELDS
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_2_PLUS

KEY = "bctrl_form_Rr5secretJj61"
UI_KEY = "bctrl_form_ui_Mm8secretQq27"
THREE_X = ("3.0", "3.1", "3.2", "3.3")
UI_TIMEOUT_MS = 30_000


@dataclass
class ApiServer:
    """A running ``airflow api-server``: its base URL and log."""

    url: str
    log_path: Path


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``airflow api-server`` on loopback with all-admins auth (one per module: both tests share it)."""
    home = tmp_path_factory.mktemp("form-airflow-home")
    log_path = home / "api-server.log"
    with running_api_server(home, log_path, start_timeout=120, migrate_timeout=300) as (url, _):
        yield ApiServer(url=url, log_path=log_path)


@pytest.mark.airflow_lines(*THREE_X, reason="Airflow 2.11 has no api-server; its form is checked below")
def test_form_fields_labels_and_masking_from_the_api_server(api_server: ApiServer) -> None:
    url = api_server.url
    # The API wants a token: 3.0 and 3.2+ make one for every request under all-admins, 3.1 does not,
    # so ask for it as a client would (GET /auth/token needs no credentials under all-admins).
    token = requests.get(f"{url}/auth/token", timeout=(5, 60))
    assert token.status_code == 201, token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = requests.get(f"{url}/ui/connections/hook_meta", headers=auth, timeout=(5, 120))
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
    created = requests.post(f"{url}/api/v2/connections", json=body, headers=auth, timeout=(5, 60))
    assert created.status_code == 201, created.text
    read = requests.get(f"{url}/api/v2/connections/bctrl_form", headers=auth, timeout=(5, 60))
    assert read.status_code == 200, read.text
    assert KEY not in read.text
    assert read.json()["password"] != KEY


@pytest.mark.ui
@pytest.mark.ui_form
@pytest.mark.airflow_lines(
    "3.0",
    "3.1",
    "3.2",
    reason="on 3.3 test_connection_ui.py drives the same form (and the Test button) in the browser",
)
def test_form_in_the_browser(api_server: ApiServer) -> None:
    """Add Connection, type BCTRL, in this line's UI: our fields and labels, the key a password, masked once saved."""
    conn_id = "bctrl_form_ui"
    started = time.monotonic()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            # Log in first, through the URL the UI itself redirects to on a 401 (all-admins: no
            # credentials; it lands on the home page). Opening /connections straight away works on
            # 3.0 and 3.2, but on 3.1 the UI's own login redirect lands on the home page, not there.
            page.goto(f"{api_server.url}/api/v2/auth/login", wait_until="networkidle")
            page.goto(f"{api_server.url}/connections", wait_until="networkidle")
            # Standard fields: relabelled, placeholder shown, the unused ones hidden, the key masked.
            dialog, host, key = add_bctrl_connection(page, conn_id)
            host.fill("http://127.0.0.1:9")
            key.fill(UI_KEY)

            # Extra fields: every one of ours, with its label and default.
            open_section(dialog, "Extra Fields")
            for name, declared in CONN_FIELDS.items():
                assert dialog.locator(f"[name=element_{name}]").is_visible(), name
                assert dialog.get_by_text(declared["label"], exact=True).is_visible(), declared["label"]
            assert dialog.locator("[name=element_timeout]").input_value() == "60"
            assert dialog.locator("[name=element_max_retries]").input_value() == "3"
            insecure = dialog.locator("[name=element_allow_insecure_http]")
            assert insecure.get_attribute("type") == "checkbox"
            assert not insecure.is_checked()

            save_connection(page, dialog)

            # The saved key comes back masked in the edit form, and nowhere in the page in clear.
            edit_bctrl_connection(page, conn_id, UI_KEY)
        except Exception:
            print(log_tail(api_server.log_path))
            raise
    print(f"browser check of the form: {time.monotonic() - started:.1f} s")
    assert UI_KEY not in api_server.log_path.read_text(encoding="utf-8", errors="replace")


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
