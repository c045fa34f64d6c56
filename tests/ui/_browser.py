"""Debian's Chromium under Playwright for the browser tests, and the connection-form steps they share.

Never a browser download (`playwright install`): the tests use ``/usr/bin/chromium`` from the Debian
package (``make system-deps``), and fail, not skip, when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Flags for a headless Chromium in a container with no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched Chromium (Playwright ``Browser``), closed on exit; a missing browser is a failure with the fix."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing, so the UI tests cannot run. Install Debian's chromium "
            "(`make system-deps`, or `apt-get install -y chromium`); never `playwright install`."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_section(dialog: Any, title: str) -> None:
    """Open one of the connection form's accordion sections (only one is open at a time)."""
    trigger = dialog.get_by_role("button", name=title, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()


def add_bctrl_connection(page: Any, conn_id: str) -> tuple[Any, Any, Any]:
    """Open Add Connection on the current page, name it ``conn_id``, pick BCTRL, and check the standard
    fields (relabelled, placeholder shown, Login/Port/Schema hidden, the key a password input).

    :return: the dialog, the API base URL input and the API key input.
    """
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").click()
    page.keyboard.type("BCTRL")
    page.get_by_role("option", name="BCTRL", exact=True).click()
    host = dialog.get_by_label("API base URL")
    key = dialog.get_by_label("API key")
    assert host.get_attribute("placeholder") == "https://api.bctrl.ai"
    assert key.get_attribute("type") == "password"
    for hidden in ("Login", "Port", "Schema"):
        assert dialog.get_by_label(hidden, exact=True).count() == 0, f"{hidden} should be hidden"
    return dialog, host, key


def save_connection(page: Any, dialog: Any, edited_conn_id: str | None = None) -> None:
    """Press Save in the connection dialog and wait until the dialog closes.

    A new connection is a ``POST /api/v2/connections`` answered 201; an edited one (``edited_conn_id``)
    a ``PATCH /api/v2/connections/{id}`` answered 200.
    """
    method, status = ("POST", 201) if edited_conn_id is None else ("PATCH", 200)

    def is_save(response: Any) -> bool:
        if response.request.method != method:
            return False
        if edited_conn_id is None:
            return bool(response.url.endswith("/api/v2/connections"))
        return f"/api/v2/connections/{edited_conn_id}" in response.url  # the UI may add a query string

    with page.expect_response(is_save) as answer:
        dialog.get_by_role("button", name="Save").click()
    assert answer.value.status == status, answer.value.text()
    dialog.wait_for(state="detached")


def edit_bctrl_connection(page: Any, conn_id: str, secret: str) -> tuple[Any, Any]:
    """Open Edit on ``conn_id``'s row and check that its saved key is masked: the API key input is a
    password input showing ``***``, and ``secret`` is nowhere in the page.

    :return: the dialog and the API key input.
    """
    page.get_by_role("row").filter(has_text=conn_id).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    open_section(dialog, "Standard Fields")
    key = dialog.get_by_label("API key")
    assert key.get_attribute("type") == "password"
    assert key.input_value() == "***"
    assert secret not in page.content()
    return dialog, key
