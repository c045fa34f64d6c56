"""The proxy and CA-bundle environment is honoured (read once per hook, with requests' own rules)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _loopback import HttpRecorder

from airflow_provider_bctrl.exceptions import BctrlTransportError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

#: Nothing listens here: a request that does not go through the proxy is refused.
UNREACHABLE_API = "http://127.0.0.1:9"


class _Proxy(HttpRecorder):
    """A forward proxy that answers as the API would (whoami for GETs, an upload for POSTs)."""

    def __init__(self) -> None:
        super().__init__(self._answer)

    @property
    def seen(self) -> list[str]:
        """The absolute URLs the proxy was asked for."""
        return [r["target"] for r in self.requests]

    @property
    def bodies(self) -> list[bytes]:
        return [r["body"] for r in self.requests if r["method"] == "POST"]

    @staticmethod
    def _answer(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if request["method"] == "POST":
            staged = {
                "id": "file-1",
                "name": "a.bin",
                "runtimeId": "rt-1",
                "runtimePath": "a.bin",
                "sizeBytes": 1,
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(staged).encode()
        who = {"organizationId": "org-via-proxy", "defaultSpaceId": "space-1"}
        return 200, {"Content-Type": "application/json"}, json.dumps(who).encode()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    server = _Proxy()
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_DEFAULT",
        json.dumps({"conn_type": "bctrl", "host": UNREACHABLE_API, "password": "bctrl_proxy_key"}),
    )
    yield server
    server.close()


def test_requests_go_through_the_proxy_from_the_environment(proxy: _Proxy) -> None:
    hook = BctrlHook(max_retries=0)
    assert hook.whoami().organization_id == "org-via-proxy"
    assert hook.whoami().organization_id == "org-via-proxy"
    assert proxy.seen == [f"{UNREACHABLE_API}/v1/auth/whoami"] * 2


def test_no_proxy_is_honoured(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(BctrlTransportError, match="connection refused"):
        BctrlHook(max_retries=0).whoami()
    assert proxy.seen == []


def test_an_upload_through_a_proxy_is_sent_whole_in_chunks(
    proxy: _Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload through an HTTP proxy arrives whole."""
    data = os.urandom(3 * 1024 * 1024 + 11)
    source = tmp_path / "a.bin"
    source.write_bytes(data)
    staged = BctrlHook(max_retries=0).upload_file("rt-1", source)
    assert staged.id == "file-1"
    assert proxy.seen == [f"{UNREACHABLE_API}/v1/runtimes/rt-1/files/upload"]
    (body,) = proxy.bodies
    assert data in body  # the whole file, inside its framing
    assert len(body) - len(data) < 1024


def test_a_none_proxy_entry_falls_through_to_all(proxy: _Proxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """As with requests' own merge, {"http": None} means "no entry", so the "all" proxy applies."""
    monkeypatch.delenv("HTTP_PROXY")
    hook = BctrlHook(max_retries=0)
    hook.get_conn().proxies = {"http": None, "all": proxy.url}  # type: ignore[dict-item]
    assert hook.whoami().organization_id == "org-via-proxy"
    assert proxy.seen == [f"{UNREACHABLE_API}/v1/auth/whoami"]


def test_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps({"conn_type": "bctrl", "password": "bctrl_ca_key"})
    )
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    hook = BctrlHook()
    session = hook.get_conn()
    # requests' own environment merge, which Session.request applies to every request.
    merged = session.merge_environment_settings(hook.settings.base_url, {}, None, None, None)
    assert merged["verify"] == "/etc/ssl/certs/ca-certificates.crt"
