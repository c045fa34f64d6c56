"""How the hook reads the Airflow connection: key, base URL, extras, and the refusals."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from airflow_provider_bctrl import CONN_FIELDS, get_provider_info
from airflow_provider_bctrl.exceptions import BctrlConnectionConfigError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

KEY = "bctrl_settings_key_123"


def _use(monkeypatch: pytest.MonkeyPatch, conn_id: str = "bctrl_default", **conn: object) -> BctrlHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "bctrl", **conn}))
    return BctrlHook(conn_id)


def test_empty_host_means_production_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _use(monkeypatch, password=KEY).settings
    assert settings.base_url == "https://api.bctrl.ai"
    assert settings.api_key == KEY
    assert settings.max_retries == 3
    assert settings.timeout == (10.0, 60.0)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.bctrl.ai", "https://api.bctrl.ai"),
        ("https://api.bctrl.ai/", "https://api.bctrl.ai"),
        ("https://gateway.example.com/bctrl/", "https://gateway.example.com/bctrl"),
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
        ("http://localhost:8787/", "http://localhost:8787"),
        ("http://[::1]:8787", "http://[::1]:8787"),
    ],
)
def test_base_url_normalised(monkeypatch: pytest.MonkeyPatch, host: str, expected: str) -> None:
    assert _use(monkeypatch, host=host, password=KEY).settings.base_url == expected


def test_port_field_is_appended_when_host_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _use(monkeypatch, host="127.0.0.1", port=8787, password=KEY).settings.base_url == (
        "https://127.0.0.1:8787"
    )


@pytest.mark.parametrize(
    ("conn", "fragment"),
    [
        ({"host": "https://api.bctrl.ai"}, "has no API key"),
        ({"host": "https://api.bctrl.ai", "password": "   "}, "has no API key"),
        ({"host": "ftp://api.bctrl.ai", "password": KEY}, "must start with https://"),
        ({"host": "http://api.bctrl.ai", "password": KEY}, "plain http://"),
        ({"host": "https://user:pw@api.bctrl.ai", "password": KEY}, "must not contain credentials"),
        ({"host": "https://api.bctrl.ai?x=1", "password": KEY}, "query string"),
        ({"password": KEY, "extra": {"timeout": "soon"}}, "'timeout' must be a number"),
        ({"password": KEY, "extra": {"timeout": 0}}, "'timeout' must be at least"),
        ({"password": KEY, "extra": {"max_retries": -1}}, "'max_retries' must be at least 0"),
        ({"password": KEY, "extra": {"max_retries": 1.5}}, "'max_retries' must be a whole number"),
        ({"password": KEY, "extra": {"allow_insecure_http": "maybe"}}, "must be true or false"),
        ({"password": KEY, "extra": {"max_retry_wait": 0}}, "'max_retry_wait' must be at least 1"),
        ({"password": KEY, "extra": {"timeout": 7200}}, "'timeout' must be at most 3600"),
        ({"password": KEY, "extra": {"max_retries": 50}}, "'max_retries' must be at most 20"),
        ({"password": KEY, "extra": {"space_id": "a/b"}}, "is not a valid id"),
    ],
)
def test_unusable_connections_are_refused(monkeypatch: pytest.MonkeyPatch, conn: dict, fragment: str) -> None:
    hook = _use(monkeypatch, **conn)
    with pytest.raises(BctrlConnectionConfigError) as info:
        _ = hook.settings
    assert fragment in str(info.value)
    assert KEY not in str(info.value)


def test_missing_connection_says_how_to_create_it() -> None:
    with pytest.raises(BctrlConnectionConfigError) as info:
        _ = BctrlHook("bctrl_nowhere").settings
    assert "bctrl_nowhere" in str(info.value)
    assert "AIRFLOW_CONN_BCTRL_NOWHERE" in str(info.value)


def test_insecure_http_needs_the_explicit_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _use(
        monkeypatch, host="http://bctrl.internal:8787", password=KEY, extra={"allow_insecure_http": True}
    )
    assert hook.settings.base_url == "http://bctrl.internal:8787"
    assert hook.settings.allow_insecure_http is True


def test_extras_are_read_by_their_bare_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every supported Airflow's connection form stores the provider's fields by their bare names."""
    hook = _use(
        monkeypatch,
        password=KEY,
        extra={
            "space_id": "space-1",
            "subaccount_id": "sub-1",
            "timeout": "12.5",
            "max_retries": "0",
            "X-Evil-Header": "injected",
        },
    )
    settings = hook.settings
    assert (settings.space_id, settings.subaccount_id) == ("space-1", "sub-1")
    assert settings.timeout == (10.0, 12.5)
    assert settings.max_retries == 0
    headers = hook.session.headers
    assert headers["BCTRL-Subaccount-Id"] == "sub-1"
    assert "X-Evil-Header" not in headers
    assert headers["User-Agent"].startswith("airflow-provider-bctrl/")


def test_hook_arguments_override_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_DEFAULT",
        json.dumps({"conn_type": "bctrl", "password": KEY, "extra": {"timeout": 30, "max_retries": 5}}),
    )
    settings = BctrlHook(timeout=3, max_retries=1).settings
    assert settings.timeout == (3.0, 3.0)
    assert settings.max_retries == 1


def test_settings_repr_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _use(monkeypatch, password=KEY)
    assert KEY not in repr(hook.settings)
    assert KEY not in repr(hook.session.auth)


def test_connection_form_fields_match_what_the_hook_reads() -> None:
    """The connection form (provider info) and the keys the hook reads stay in step."""
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == BctrlHook.conn_type == "bctrl"
    assert conn_type["hook-name"] == BctrlHook.hook_name
    assert set(conn_type["conn-fields"]) == set(CONN_FIELDS)
    from airflow_provider_bctrl import _settings as settings_module

    source = inspect.getsource(settings_module)
    read_keys = set(re.findall(r'_extra(?:_id)?\(extra, "([a-z_]+)"', source))
    read_keys |= {number.key for number in settings_module._NUMBERS if number.extra_range is not None}
    assert read_keys == set(CONN_FIELDS)
    behaviour = conn_type["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"login", "schema", "port"}
    assert behaviour["relabeling"] == {"host": "API base URL", "password": "API key"}


@pytest.mark.parametrize(
    "bad_key",
    ["bctrl_abc\u200bdef", "bctrl_abc\ndef", "bctrl_abc def", "bctrl_\u2026"],
    ids=["zero-width space", "newline", "inner space", "ellipsis"],
)
def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, bad_key: str
) -> None:
    hook = _use(monkeypatch, host="http://127.0.0.1:9", password=bad_key)
    with pytest.raises(BctrlConnectionConfigError, match="paste the key again") as info:
        _ = hook.settings
    assert bad_key not in str(info.value)
    assert "abc" not in str(info.value)
    ok, message = hook.test_connection()
    assert ok is False
    assert "paste the key again" in message
    assert "abc" not in message


def test_credentials_in_the_base_url_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _use(monkeypatch, host="https://me:bctrl_SECRETxyz@api.example.com", password=KEY)
    ok, message = hook.test_connection()
    assert ok is False
    assert "must not contain credentials" in message
    assert "SECRETxyz" not in message
