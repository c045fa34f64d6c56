"""Debian's Chromium under Playwright for the browser tests: launched the same way by every UI test.

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
