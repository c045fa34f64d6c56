"""Issue 12, second probe of the emulator: query values that pass ``str.isdigit`` but not ``int``."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_bctrl.testing.emulator import BctrlEmulator


@pytest.mark.parametrize(
    "limit", ["9" * 5000, "\u00b2", "\u0665"], ids=["5000-digits", "superscript-two", "arabic-five"]
)
def test_a_list_limit_that_is_not_a_small_ascii_number_is_a_400(
    emu: BctrlEmulator, runtime_id: str, limit: str
) -> None:
    """``'9' * 5000`` passed ``isdigit()`` and then ``int()`` refused it: a 500 ``server.error``."""
    answer = requests.get(
        f"{emu.url}/v1/runtimes/{runtime_id}/files",
        params={"limit": limit},
        headers={"Authorization": f"Bearer {emu.api_key}"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "request.invalid" or answer.json()["reasonClass"] == "invalid_input"
