"""The API key goes to the API's own origin and nowhere else, redirects included."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _loopback import HttpRecorder

from airflow_provider_bctrl.exceptions import BctrlUnexpectedResponseError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook

KEY = "bctrl_home_only_Zq81"


class _Recorder(HttpRecorder):
    """Answers whoami as the API would; with ``redirect_to`` set, GETs are redirected there (302).

    POSTs are always redirected (307), to ``redirect_to`` or to the same path.
    """

    def __init__(self) -> None:
        self.redirect_to: str | None = None
        super().__init__(self._answer)

    @property
    def seen(self) -> list[dict[str, str | None]]:
        return [
            {"path": r["target"], "authorization": r["headers"].get("authorization")} for r in self.requests
        ]

    def _answer(self, request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if request["method"] == "POST":
            return 307, {"Location": (self.redirect_to or "") + request["target"]}, b""
        if self.redirect_to:
            return 302, {"Location": self.redirect_to + request["target"]}, b""
        body = json.dumps({"organizationId": "org_1", "defaultSpaceId": "space_1"}).encode()
        return 200, {"Content-Type": "application/json"}, body


@pytest.fixture
def servers() -> Iterator[tuple[_Recorder, _Recorder]]:
    api, elsewhere = _Recorder(), _Recorder()
    yield api, elsewhere
    for server in (api, elsewhere):
        server.close()


def test_redirect_to_another_origin_drops_the_key(
    servers: tuple[_Recorder, _Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, elsewhere = servers
    api.redirect_to = elsewhere.url  # same host, other port: another origin
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_REDIRECT", json.dumps({"conn_type": "bctrl", "host": api.url, "password": KEY})
    )
    who = BctrlHook("bctrl_redirect", max_retries=0).whoami()
    assert who.organization_id == "org_1"
    assert api.seen[0]["authorization"] == f"Bearer {KEY}"
    assert elsewhere.seen == [{"path": "/v1/auth/whoami", "authorization": None}]


def test_key_is_not_attached_to_other_origins_even_on_the_hooks_session(
    servers: tuple[_Recorder, _Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, elsewhere = servers
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_SESSION", json.dumps({"conn_type": "bctrl", "host": api.url, "password": KEY})
    )
    session = BctrlHook("bctrl_session").get_conn()
    session.get(f"{elsewhere.url}/v1/files/abc/content", timeout=5).close()  # e.g. a foreign downloadUrl
    session.get(f"{api.url}/v1/auth/whoami", timeout=5).close()
    assert elsewhere.seen[-1]["authorization"] is None
    assert api.seen[-1]["authorization"] == f"Bearer {KEY}"


def test_posts_do_not_follow_redirects(
    servers: tuple[_Recorder, _Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, elsewhere = servers
    api.redirect_to = elsewhere.url
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_POST", json.dumps({"conn_type": "bctrl", "host": api.url, "password": KEY})
    )
    hook = BctrlHook("bctrl_post", max_retries=0)
    # A redirected POST would need its body sent again: it is reported, never followed.
    with pytest.raises(BctrlUnexpectedResponseError) as info:
        hook.collect_file("rt_1", "a.txt", space_id="space_1")
    assert info.value.status == 307
    assert "not a BCTRL error object" in str(info.value)
    assert KEY not in str(info.value)
    assert elsewhere.seen == []


def test_a_transport_error_chains_its_cause_without_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3's frames hold the Authorization header in their locals, and Airflow 3.0's console
    traceback prints frame locals: the error keeps its cause (for test_connection) but no frames."""
    import socket

    from airflow_provider_bctrl.exceptions import BctrlTransportError

    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:  # read the request (the key went out), then close without an answer
        for _ in range(2):
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BCTRL_HANGUP", json.dumps({"conn_type": "bctrl", "host": url, "password": KEY})
    )
    try:
        with BctrlHook("bctrl_hangup", max_retries=0) as hook, pytest.raises(BctrlTransportError) as raised:
            hook.whoami()
    finally:
        listener.close()
    chained = []
    current: BaseException | None = raised.value.__cause__
    while current is not None and len(chained) < 20:
        chained.append(current)
        current = current.__cause__ or current.__context__
    assert chained, "the cause is kept"
    assert all(exc.__traceback__ is None for exc in chained)
    assert KEY not in str(raised.value)
