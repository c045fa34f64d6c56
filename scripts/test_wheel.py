"""`make test-wheel`: install the built wheel (not the clone) into a fresh venv with Airflow and run a DAG.

1. ``.venv-wheel`` (created when missing) gets the one wheel in ``dist/`` and its dependencies
   (Airflow included), the wheel itself always reinstalled so the newest build is the one tested;
2. everything then runs in a temporary folder outside the clone, with a clean environment, so nothing
   can import the source tree: the package must load from the venv's site-packages;
3. ``airflow providers list`` must show the provider (the entry point registered);
4. the wheel's own emulator is started (``python -m airflow_provider_bctrl.testing.emulator``) and
   prepared with the wheel's own ``EmulatorClient`` command line;
5. ``airflow dags test`` runs a small DAG that uploads a file, collects the browser's result as an
   artifact, downloads it to a folder with a space in its name and checks the bytes in a ``@task``.

Prints each step with its duration; exits 1 naming the step that failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
API_KEY = "bctrl_wheel_check_key"
DAG_ID = "bctrl_wheel_check"
RESULT = b'{"status": "ok", "checked_by": "the browser"}'
#: Where the simulated browser leaves its result, inside the emulated runtime (not on this machine).
RUNTIME_OUTPUT = "/tmp/runtime/output/result.json"  # noqa: S108
READY = re.compile(r"listening on (?P<url>http://\S+)")

# The DAG run by `airflow dags test`; its id is DAG_ID.
DAG_FILE = r'''
"""Written by scripts/test_wheel.py: the installed provider, end to end against its own emulator."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_bctrl.operators import (
    BctrlCollectFileOperator,
    BctrlDownloadFileOperator,
    BctrlUploadFileOperator,
)

with DAG(
    "bctrl_wheel_check",
    schedule=None,
    start_date=datetime(2024, 1, 1),  # in the past: a run dated before it would get no tasks
    params={"runtime_id": "", "work": "", "expected_sha256": ""},
) as dag:

    @task
    def make_report() -> str:
        path = Path(get_current_context()["params"]["work"]) / "report.csv"
        path.write_text("id,value\n1,42\n")
        return str(path)

    upload = BctrlUploadFileOperator(
        task_id="upload",
        runtime_id="{{ params.runtime_id }}",
        source=make_report(),
        runtime_path="inputs/",
        hook_params={"timeout": 60, "max_retries": 2},
    )
    collect = BctrlCollectFileOperator(
        task_id="collect",
        runtime_id="{{ params.runtime_id }}",
        path="/tmp/runtime/output/result.json",
        artifact={"kind": "report", "name": "wheel-check"},
    )
    download = BctrlDownloadFileOperator(
        task_id="download",
        file_id=collect.output["file_id"],
        destination="{{ params.work }}/down loads/",
    )

    @task
    def check(path: str) -> str:
        params = get_current_context()["params"]
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if digest != params["expected_sha256"]:
            raise ValueError(f"downloaded {path} has sha256 {digest}, expected {params['expected_sha256']}")
        print(f"WHEEL CHECK OK: {path}")
        return digest

    upload >> collect
    check(download.output)
'''


class StepFailed(Exception):
    """A step of the wheel check did not do what it should."""


def step(label: str) -> float:
    print(f"==> {label}", flush=True)
    return time.monotonic()


def run(command: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 900) -> str:
    """Run a command; return its output (stdout and stderr together); raise with its tail on failure."""
    result = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    output = result.stdout.decode("utf-8", "replace")
    if result.returncode != 0:
        raise StepFailed(f"`{' '.join(command)}` exited {result.returncode}:\n{output[-4000:]}")
    return output


def install(venv: Path, wheel: Path, constraint: str | None) -> None:
    python = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if not python.exists():
        started = step(f"creating {venv}")
        run([sys.executable, "-m", "venv", str(venv)], env=env, cwd=REPO)
        print(f"    {time.monotonic() - started:.0f} s")
    started = step(f"installing {wheel.name} and its dependencies (Airflow) into {venv}")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--progress-bar", "off"]
    extra = ["--constraint", constraint] if constraint else []
    run([*pip, *extra, f"{wheel}[emulator]"], env=env, cwd=REPO)
    # The same version may be installed from an earlier build: always test this one.
    run([*pip, "--force-reinstall", "--no-deps", str(wheel)], env=env, cwd=REPO)
    print(f"    {time.monotonic() - started:.0f} s")


def clean_env(venv: Path, work: Path) -> dict[str, str]:
    """An environment with nothing of the clone or the caller's Airflow in it."""
    home = work / "airflow-home"
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": str(work / "tmp"),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONSAFEPATH": "1",
    }


def start_emulator(venv: Path, env: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = (work / "emulator.log").open("wb")
    process = subprocess.Popen(
        [
            str(venv / "bin" / "python"),
            "-m",
            "airflow_provider_bctrl.testing.emulator",
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        env={**env, "BCTRL_EMULATOR_API_KEY": API_KEY},
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    line = b""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        match = READY.search(line.decode("utf-8", "replace"))
        if match:
            return process, match.group("url")
    stop(process)
    raise StepFailed(f"the emulator did not report ready: {line!r}; see {work / 'emulator.log'}")


def stop(process: subprocess.Popen[bytes]) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def check(venv: Path, work: Path) -> None:
    env = clean_env(venv, work)
    for folder in ("home", "tmp", "dags", "airflow-home", "down loads"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    python, airflow = str(venv / "bin" / "python"), str(venv / "bin" / "airflow")

    started = step("the package loads from the venv, not the clone")
    where = run(
        [python, "-c", "import airflow_provider_bctrl as p; print(p.__file__)"], env=env, cwd=work
    ).strip()
    if not Path(where).resolve().is_relative_to(venv.resolve()) or "site-packages" not in where:
        raise StepFailed(f"airflow_provider_bctrl was imported from {where}, not from {venv}'s site-packages")
    print(f"    {where}")

    step("airflow db migrate")
    run([airflow, "db", "migrate"], env=env, cwd=work)
    step("airflow providers list")
    providers = run([airflow, "providers", "list"], env=env, cwd=work)
    line = next((row for row in providers.splitlines() if "airflow-provider-bctrl" in row), None)
    if line is None:
        raise StepFailed(f"airflow providers list does not show airflow-provider-bctrl:\n{providers[-2000:]}")
    print(f"    {' '.join(line.split())}")

    step("starting the wheel's emulator")
    emulator, url = start_emulator(venv, env, work)
    try:
        client = [python, "-m", "airflow_provider_bctrl.testing.client", "--url", url]
        runtime = run([*client, "create-runtime"], env=env, cwd=work).strip()
        run(
            [*client, "write-file", runtime, RUNTIME_OUTPUT, "--data", RESULT.decode()],
            env=env,
            cwd=work,
        )
        print(f"    {url}, runtime {runtime}")
        (work / "dags" / f"{DAG_ID}.py").write_text(textwrap.dedent(DAG_FILE))
        dag_env = {
            **env,
            "AIRFLOW_CONN_BCTRL_DEFAULT": json.dumps(
                {"conn_type": "bctrl", "host": url, "password": API_KEY}
            ),
        }
        conf = {
            "runtime_id": runtime,
            "work": str(work),
            "expected_sha256": hashlib.sha256(RESULT).hexdigest(),
        }
        started = step(f"airflow dags test {DAG_ID}")
        output = run([airflow, "dags", "test", DAG_ID, "-c", json.dumps(conf)], env=dag_env, cwd=work)
        (work / "dags-test.log").write_text(output)
        # `airflow dags test` exits non-zero when the run failed; the check task prints this line.
        if "WHEEL CHECK OK" not in output:
            raise StepFailed(f"the DAG run did not reach its check task:\n{output[-4000:]}")
        downloaded = work / "down loads" / "result.json"
        if downloaded.read_bytes() != RESULT:
            raise StepFailed(f"{downloaded} does not hold the browser's result")
        files = json.loads(run([*client, "files"], env=env, cwd=work))
        sources = sorted(f["source"] for f in files)
        if sources != ["runtime", "upload"]:
            raise StepFailed(f"the emulator should hold one uploaded and one collected file, has {sources}")
        print(
            f"    success in {time.monotonic() - started:.0f} s: uploaded, collected, downloaded to {downloaded}"
        )
    finally:
        stop(emulator)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default=str(REPO / "dist"), help="folder with the built wheel")
    parser.add_argument("--venv", default=str(REPO / ".venv-wheel"), help="venv to install into")
    parser.add_argument("--constraint", help="a pip constraints file (e.g. Airflow's) for the install")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)
    wheels = sorted(Path(args.dist).glob("*.whl"))
    if len(wheels) != 1:
        print(f"ERROR: expected one wheel in {args.dist} (run `make dist`), found {wheels}", file=sys.stderr)
        return 1
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bctrl-wheel-check-"))
    try:
        install(Path(args.venv).resolve(), wheels[0].resolve(), args.constraint)
        check(Path(args.venv).resolve(), work)
    except (StepFailed, subprocess.TimeoutExpired) as exc:
        print(f"ERROR: {exc}\n(work folder kept: {work})", file=sys.stderr)
        return 1
    print(
        f"==> make test-wheel: the wheel installs, registers and runs a DAG ({time.monotonic() - started:.0f} s)"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
