"""Several calls on one hook travel over one pooled TCP connection.

The hook talks to the real emulator through a small loopback TCP relay that counts the connections
it accepts: what the server side sees, not what the client believes. urllib3's pool counters are
checked as a second, independent witness.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import LoopbackServer, relay_to
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool

from airflow_provider_bctrl.exceptions import BctrlNotFoundError
from airflow_provider_bctrl.hooks.bctrl import BctrlHook
from airflow_provider_bctrl.testing.emulator import BctrlEmulator

_IO_TIMEOUT = 30.0


class CountingRelay:
    """Forwards loopback TCP connections to ``upstream`` and counts how many it accepted."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server: LoopbackServer | None = None
        self.port = 0

    def __enter__(self) -> CountingRelay:
        self._server = LoopbackServer(relay_to(self.upstream, lambda: self._server, _IO_TIMEOUT))
        self.port = self._server.port
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def accepted(self) -> int:
        """How many connections the relay accepted: each is one new connection the client opened."""
        return self._server.accepted if self._server is not None else 0


@pytest.fixture
def relay(emu: BctrlEmulator) -> Iterator[CountingRelay]:
    host, port = emu.url.removeprefix("http://").rsplit(":", 1)
    with CountingRelay((host, int(port))) as counting:
        yield counting


@pytest.fixture
def hook(relay: CountingRelay, emu: BctrlEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[BctrlHook]:
    connection = json.loads(emu.airflow_connection_json())
    connection["host"] = f"http://127.0.0.1:{relay.port}"
    monkeypatch.setenv("AIRFLOW_CONN_BCTRL_DEFAULT", json.dumps(connection))
    with BctrlHook(max_retries=0) as bctrl_hook:
        yield bctrl_hook


def _pool(hook: BctrlHook) -> HTTPConnectionPool:
    """The one urllib3 pool the hook's session has for the API's origin."""
    adapter = hook.session.get_adapter(hook.settings.base_url)
    assert isinstance(adapter, HTTPAdapter)
    pools = adapter.poolmanager.pools
    found = [pools[key] for key in pools.keys()]  # noqa: SIM118 - a RecentlyUsedContainer, not a dict
    assert len(found) == 1
    assert isinstance(found[0], HTTPConnectionPool)
    return found[0]


def test_several_calls_on_one_hook_share_one_connection(
    hook: BctrlHook, relay: CountingRelay, runtime_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(b"a,b\n1,2\n" * 50_000)

    hook.whoami()
    first = hook.upload_file(runtime_id, source, runtime_path="reuse/one.csv")
    hook.get_file(first.id)
    second = hook.upload_file(runtime_id, source, runtime_path="reuse/two.csv")
    hook.stage_file(runtime_id, second.id, runtime_path="reuse/three.csv")
    hook.whoami()

    assert relay.accepted == 1
    pool = _pool(hook)
    assert pool.num_connections == 1
    assert pool.num_requests == 6


def test_an_error_response_does_not_cost_the_connection(
    hook: BctrlHook, relay: CountingRelay, runtime_id: str
) -> None:
    hook.whoami()
    with pytest.raises(BctrlNotFoundError):
        hook.get_file("file_does_not_exist")
    hook.whoami()

    assert relay.accepted == 1


def test_a_closed_hook_opens_a_new_connection(hook: BctrlHook, relay: CountingRelay) -> None:
    # The control: the relay does see new connections, so the counts above mean reuse.
    hook.whoami()
    hook.close()
    hook.whoami()

    assert relay.accepted == 2


def test_threads_sharing_one_hook_stay_within_the_pool(hook: BctrlHook, relay: CountingRelay) -> None:
    hook.whoami()
    errors: list[BaseException] = []

    def calls() -> None:
        try:
            for _ in range(5):
                hook.whoami()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    # At most one connection per concurrent thread; sequential calls above reused the first one.
    assert 1 <= relay.accepted <= 4
    assert _pool(hook).num_requests == 21
