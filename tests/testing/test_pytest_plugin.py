"""The ``bctrl_emulator`` pytest plugin, used the way a user's project would: from outside this test suite.

Each test writes a small user project into a temporary directory and runs pytest on it in a separate
process. Nothing there imports this repository's tests or conftest: the fixtures come from the
``pytest11`` entry point of the installed provider.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

pytest_plugins = ["pytester"]

USER_TEST = """
import hashlib
from airflow_provider_bctrl.hooks.bctrl import BctrlHook


def test_upload_and_collect_offline(bctrl_emulator, tmp_path):
    source = tmp_path / "input.csv"
    source.write_bytes(b"id,name\\n1,ada\\n")
    hook = BctrlHook()  # "bctrl_default" now points at the emulator
    staged = hook.upload_file(bctrl_emulator.runtime_id, source, runtime_path="in/input.csv")
    assert bctrl_emulator.read_runtime_file(bctrl_emulator.runtime_id, "in/input.csv") == source.read_bytes()

    bctrl_emulator.write_runtime_file(bctrl_emulator.runtime_id, "/tmp/out/result.json", b'{"ok": true}')
    collected = hook.collect_file(bctrl_emulator.runtime_id, "/tmp/out/result.json", artifact={"kind": "report"})
    stored = {f["id"]: f for f in bctrl_emulator.stored_files()}
    assert stored[collected.file.id]["sha256"] == hashlib.sha256(b'{"ok": true}').hexdigest()
    assert staged.id in stored
    assert collected.artifact is not None


def test_each_test_gets_a_fresh_runtime(bctrl_emulator):
    other = bctrl_emulator.new_runtime()
    assert other != bctrl_emulator.runtime_id
    assert bctrl_emulator.conn_id == "bctrl_default"


def test_faults_are_available(bctrl_emulator):
    import pytest
    from airflow_provider_bctrl.exceptions import BctrlAuthError

    bctrl_emulator.add_fault("whoami", status=403)
    with pytest.raises(BctrlAuthError):
        BctrlHook(max_retries=0).whoami()
"""

CUSTOM_CONN = """
import pytest
from airflow_provider_bctrl.hooks.bctrl import BctrlHook


@pytest.fixture
def bctrl_conn_id():
    return "my_bctrl"


def test_custom_connection_id(bctrl_emulator):
    assert bctrl_emulator.conn_id == "my_bctrl"
    assert BctrlHook("my_bctrl").whoami().default_space_id == bctrl_emulator.space_id
"""


@pytest.fixture
def user_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    home = pytester.path / "airflow-home"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    monkeypatch.delenv("AIRFLOW_CONN_BCTRL_DEFAULT", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester


def test_plugin_fixtures_in_a_user_project(user_env: pytest.Pytester) -> None:
    user_env.makepyfile(test_user_pipeline=USER_TEST)
    result = user_env.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3)


def test_plugin_connection_id_can_be_overridden(user_env: pytest.Pytester) -> None:
    user_env.makepyfile(test_custom=CUSTOM_CONN)
    result = user_env.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)


def test_plugin_is_registered_by_the_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "bctrl"]
    assert entry.value == "airflow_provider_bctrl.testing.pytest_plugin"
    assert os.environ.get("AIRFLOW_HOME")  # the suite's own Airflow home is untouched by the plugin


def _documented_files() -> dict[str, str]:
    """The files docs/testing.md shows, each introduced by an ``<!-- file: NAME -->`` line."""
    blocks = re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", DOCS_PAGE.read_text(), flags=re.DOTALL)
    return dict(blocks)


def test_the_documented_example_project_passes(user_env: pytest.Pytester) -> None:
    """docs/testing.md's example (conftest, DAG, dag.test() test) works exactly as printed."""
    files = _documented_files()
    assert set(files) == {"conftest.py", "dags/enrich_leads.py", "test_enrich_leads.py"}
    for name, text in files.items():
        target = user_env.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    result = user_env.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=1)
