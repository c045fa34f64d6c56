"""A distributed Airflow on this machine: CeleryExecutor with Redis and PostgreSQL, files through S3.

One implementation behind ``make demo-celery`` (``scripts/demo_celery.py``) and the distributed test
(``tests/distributed``): both start it with :func:`running_stack`.

Everything listens on 127.0.0.1, on free ports, and runs as a child process in a process group of its
own, so that stopping is a signal to each group and a check that nothing is left:

- PostgreSQL (Debian package ``postgresql``): the metadata database and Celery's result backend. It
  refuses to run as root, so as root ``initdb`` and ``postgres`` run as the ``postgres`` user, with a
  private data directory and their own port;
- Redis (Debian package ``redis-server``): the Celery broker;
- moto's server mode: an S3-compatible object store (a real S3 API over HTTP), with one bucket;
- the BCTRL emulator, in its own process;
- Airflow's scheduler, dag-processor, triggerer, api-server and two Celery workers ``w1`` and ``w2``.
  Each worker has its own working directory and ``TMPDIR``, its own log-server port, and reports its
  Celery name as the task instances' ``hostname`` (``[core] hostname_callable``), which is how the
  REST API tells the workers apart. All components share one JWT secret.

A cluster policy (``airflow_local_settings.py`` in the stack's Airflow home) routes
``bctrl_report_pipeline``'s ``generate_report`` and ``collect_results`` to a queue only ``w1`` serves
and ``upload_report`` and ``download_results`` to one only ``w2`` serves; the other tasks use the
default queue both serve. So in every run the report is written on one worker and uploaded from the
other: the hand-off goes through S3, never through a shared disk.

Only the standard library, ``requests`` and the provider's small wait helpers
(``airflow_provider_bctrl.testing._wait``, shared with the standalone tests) are imported at the top;
Airflow runs in the child processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from airflow_provider_bctrl.testing._wait import airflow_healthy, free_port, poll, session_members, wait_gone

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "bctrl_report_pipeline"
BUCKET = "bctrl-reports"
S3_CONN_ID = "s3_reports"
WORKERS = ("w1", "w2")
#: Task slots per worker (Celery prefork processes); BCTRL_STACK_CONCURRENCY overrides it.
WORKER_CONCURRENCY = int(os.environ.get("BCTRL_STACK_CONCURRENCY", "2"))
#: The browser's result file inside each emulated runtime (the DAG's default output_path).
OUTPUT_PATH = "/tmp/runtime/output/results.json"  # noqa: S108 - a path inside the runtime
#: Which worker's queue each pinned task goes to (see the module docstring).
PINNED_TASKS = {
    "generate_report": "w1",
    "collect_results": "w1",
    "upload_report": "w2",
    "download_results": "w2",
}
START_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0
STOP_GRACE = 30.0

LOCAL_SETTINGS = f'''"""Cluster policy and worker identity of the celery_stack deployment (written by scripts/celery_stack.py)."""

import os
import socket

PINNED = {PINNED_TASKS!r}


def task_policy(task):
    """Route the pipeline's producer and uploader to different workers' queues."""
    if task.dag_id == {DAG_ID!r} and task.task_id in PINNED:
        task.queue = "stack-" + PINNED[task.task_id]


def worker_hostname():
    """The Celery worker's name (w1@host) for task instances; other components: the FQDN."""
    name = os.environ.get("BCTRL_STACK_WORKER")
    return f"{{name}}@{{socket.gethostname()}}" if name else socket.getfqdn()
'''


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_bindir() -> Path:
    """The newest PostgreSQL server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "apt-get install postgresql (make demo-celery installs it as root)."
        )
    return candidates[-1].parent


@dataclass
class Service:
    """One started process (the leader of its own process group) and the ports it owns."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: list[int] = field(default_factory=list)
    stop_signal: int = signal.SIGTERM

    def log_tail(self, chars: int = 3000) -> str:
        """The end of its output."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return f"--- {self.name} ({self.log_path}) ---\n{text[-chars:]}"


@dataclass
class Stack:
    """The running deployment: its services, URLs, the emulator and a REST client for Airflow."""

    root: Path
    api_url: str = ""
    s3_url: str = ""
    services: list[Service] = field(default_factory=list)
    emulator: Any = None
    session: requests.Session = field(default_factory=requests.Session)
    timings: dict[str, float] = field(default_factory=dict)
    #: After stop(): seconds from the stop signal until each service's process group was gone.
    stop_times: dict[str, float] = field(default_factory=dict)
    #: After stop(): processes and ports still alive (both must be empty).
    leftover_processes: dict[str, list[str]] = field(default_factory=dict)
    leftover_ports: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    pg_data: Path | None = None

    def worker_dir(self, name: str) -> Path:
        """A worker's own working directory (its TMPDIR is ``<dir>/tmp``)."""
        return self.root / name

    def logs(self, chars: int = 3000) -> str:
        """Every service's log tail, for failure messages."""
        return "\n".join(service.log_tail(chars) for service in self.services)

    def start(
        self, name: str, command: list[str], *, env: dict[str, str] | None = None, **kwargs: Any
    ) -> Service:
        """Start ``command`` in a process group of its own, output into ``<root>/logs/<name>.log``."""
        log_path = self.root / "logs" / f"{name}.log"
        stop_signal = kwargs.pop("stop_signal", signal.SIGTERM)
        ports = kwargs.pop("ports", [])
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        service = Service(name, process, log_path, ports, stop_signal)
        self.services.append(service)
        self.ports.extend(ports)
        return service

    def api(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """Call Airflow's ``/api/v2<path>``; the decoded JSON, or RuntimeError naming status and body."""
        response = self.session.request(method, f"{self.api_url}/api/v2{path}", timeout=(5, 60), **kwargs)
        if response.status_code not in expect:
            raise RuntimeError(
                f"{method} /api/v2{path} answered {response.status_code}: {response.text[:2000]}"
            )
        return response.json() if response.content else None

    def s3_client(self) -> Any:
        """A boto3 S3 client for the stack's object store (credentials as in the s3_reports connection)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's placeholder credentials
            region_name="us-east-1",
        )

    def s3_get(self, uri: str) -> bytes:
        """The bytes of ``s3://bucket/key`` read straight from the object store."""
        # str(ObjectStoragePath) carries its connection as user info: s3://<conn_id>@bucket/key.
        bucket, _, key = uri.removeprefix("s3://").split("@", 1)[-1].partition("/")
        data: bytes = self.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def s3_keys(self) -> list[str]:
        """Every key in the bucket (first 1000)."""
        listing = self.s3_client().list_objects_v2(Bucket=BUCKET)
        return [item["Key"] for item in listing.get("Contents", [])]


# ------------------------------------------------------------------------------------ services


def _start_postgres(stack: Stack) -> tuple[str, Service]:
    """initdb + postgres on a private data dir and a free loopback port; returns the SQLAlchemy URL."""
    bindir = postgres_bindir()
    user = "postgres" if os.geteuid() == 0 else None
    # Outside the stack's root: that may sit in a 0700 tree (pytest's tmp) postgres cannot enter.
    data = Path(tempfile.mkdtemp(prefix="bctrl-celery-pg-"))
    stack.pg_data = data
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    initdb = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data / "db"),
            "-U",
            "airflow",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        user=user,
        cwd=data,
        capture_output=True,
        text=True,
        check=False,
    )
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
    port = free_port()
    # A throwaway test database: no durability needed, so no fsync; no unix socket, TCP on loopback only.
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": "",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
    command = [str(bindir / "postgres"), "-D", str(data / "db"), "-p", str(port)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM would wait for every client to leave).
    service = stack.start("postgres", command, user=user, cwd=data, ports=[port], stop_signal=signal.SIGINT)

    def database_created() -> bool | None:
        if service.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {service.process.returncode}\n{service.log_tail()}")
        created = subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
            capture_output=True,
            text=True,
            check=False,
        )
        return True if created.returncode == 0 else None

    poll("PostgreSQL to accept connections", database_created, timeout=60)
    return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow", service


def _start_redis(stack: Stack) -> str:
    """redis-server in the foreground, no persistence; returns the broker URL."""
    redis = shutil.which("redis-server")
    if not redis:
        raise RuntimeError("redis-server not found: apt-get install redis-server (make demo-celery does it).")
    port = free_port()
    folder = stack.root / "redis"
    folder.mkdir()
    command = [
        redis,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    service = stack.start("redis", command, ports=[port])

    def pong() -> bool | None:
        if service.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {service.process.returncode}\n{service.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return True if sock.recv(16).startswith(b"+PONG") else None
        return None

    poll("Redis to answer PING", pong, timeout=30)
    return f"redis://127.0.0.1:{port}/0"


def start_s3(stack: Stack) -> None:
    """moto's S3-compatible server, with the bucket the pipeline writes to."""
    port = free_port()
    service = stack.start("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], ports=[port])
    stack.s3_url = f"http://127.0.0.1:{port}"

    def bucket_created() -> bool | None:
        if service.process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {service.process.returncode}\n{service.log_tail()}")
        try:
            response = requests.put(f"{stack.s3_url}/{BUCKET}", timeout=(1, 10))
        except requests.RequestException:
            return None
        return True if response.status_code == 200 else None

    poll("the S3 server to create the bucket", bucket_created, timeout=60)


def _airflow_env(stack: Stack, *, database: str, broker: str, api_port: int) -> dict[str, str]:
    """The environment every Airflow component shares."""
    home = stack.root / "airflow-home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS, encoding="utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "BCTRL_"))
    }
    s3_connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": stack.s3_url, "region_name": "us-east-1"},
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=database,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__PARALLELISM="16",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__HOSTNAME_CALLABLE="airflow_local_settings.worker_hostname",
        AIRFLOW__CELERY__BROKER_URL=broker,
        AIRFLOW__CELERY__RESULT_BACKEND="db+" + database,
        AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER="1",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(api_port),
        AIRFLOW__API__WORKERS="1",
        # Tasks reach the execution API through this; the default (port 8080) refuses every task.
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{api_port}",
        # One secret for every component: workers' task tokens must verify on the api-server.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
        # Only the runs we trigger: unpausing a @daily DAG must not add scheduled runs.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW_CONN_BCTRL_DEFAULT=stack.emulator.airflow_connection_json(),
        **{f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(s3_connection)},
        BCTRL_SPACE_ID=stack.emulator.space_id,
        PYTHONPATH=os.pathsep.join(filter(None, [str(home / "config"), os.environ.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


def _start_airflow(stack: Stack, env: dict[str, str], api_port: int) -> None:
    airflow = str(BIN / "airflow")
    stack.start("api-server", [airflow, "api-server"], env=env, ports=[api_port])
    stack.start(
        "triggerer",
        [airflow, "triggerer"],
        env=env,
        ports=[int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"])],
    )
    stack.start("dag-processor", [airflow, "dag-processor"], env=env)
    stack.start("scheduler", [airflow, "scheduler"], env=env)
    for name in WORKERS:
        folder = stack.worker_dir(name)
        (folder / "tmp").mkdir(parents=True)
        log_port = free_port()
        worker_env = dict(
            env,
            TMPDIR=str(folder / "tmp"),
            BCTRL_STACK_WORKER=name,
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(log_port),
        )
        command = [
            airflow,
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--queues",
            f"default,stack-{name}",
            "--pid",
            str(folder / "worker.pid"),
            "--without-mingle",
            "--without-gossip",
        ]
        stack.start(f"worker-{name}", command, env=worker_env, cwd=folder, ports=[log_port])


def _wait_healthy(stack: Stack) -> None:
    def healthy() -> bool | None:
        for service in stack.services:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited with {service.process.returncode}\n{stack.logs()}")
        if not airflow_healthy(stack.api_url):
            return None
        # Celery prints "<name>@<host> ready." once a worker consumes from the broker.
        for name in WORKERS:
            log = (stack.root / "logs" / f"worker-{name}.log").read_text(encoding="utf-8", errors="replace")
            if not re.search(rf"{name}@\S+ ready\.", log):
                return None
        return True

    poll(
        "a healthy deployment (api, scheduler, triggerer, dag-processor, both workers)",
        healthy,
        timeout=START_TIMEOUT,
        context=stack.logs,
    )


def stop(stack: Stack) -> None:
    """Stop every service (Airflow first, then the emulator, S3, Redis, PostgreSQL); record leftovers.

    Each group gets its stop signal, a bounded wait, then SIGKILL. Afterwards ``leftover_processes``
    and ``leftover_ports`` say what is still alive (both empty when all went well).
    """
    infrastructure = [s for s in stack.services if s.name in ("postgres", "redis", "s3")]
    emulator_pid = stack.emulator.pid if stack.emulator is not None else None
    _stop_group([s for s in stack.services if s not in infrastructure], stack.stop_times)
    if stack.emulator is not None:
        stack.emulator.stop()
    _stop_group(infrastructure, stack.stop_times)
    time.sleep(0.2)
    stack.leftover_processes = {
        s.name: members for s in stack.services if (members := session_members(s.process.pid))
    }
    if emulator_pid and session_members(emulator_pid):
        stack.leftover_processes["emulator"] = session_members(emulator_pid)
    stack.leftover_ports = [port for port in stack.ports if port_open(port)]
    stack.session.close()
    if stack.pg_data is not None:
        shutil.rmtree(stack.pg_data, ignore_errors=True)


def _stop_group(services: list[Service], took: dict[str, float]) -> None:
    """Signal every service's process group at once, wait a bounded time, SIGKILL what is left of its session.

    ``took`` receives, per service, the seconds until its whole group was gone.
    """
    signalled = time.monotonic()
    for service in services:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.process.pid, service.stop_signal)
    deadline = signalled + STOP_GRACE
    for service in services:
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        wait_gone(service.process.pid, max(0.0, deadline - time.monotonic()))
        took[service.name] = time.monotonic() - signalled
    for service in services:
        for member in session_members(service.process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(member.split()[0]), signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=10)


@contextlib.contextmanager
def running_stack(root: Path, stack: Stack | None = None) -> Iterator[Stack]:
    """Start the whole stack under ``root``, wait until healthy, and always stop it (see :func:`stop`).

    Pass ``stack`` to keep a handle on it (timings, leftovers) even when starting fails.
    """
    from airflow_provider_bctrl.testing.emulator import BctrlEmulator

    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    stack = stack if stack is not None else Stack(root=root)
    started = time.monotonic()
    try:
        # The emulator, Redis and S3 come up while PostgreSQL initialises its data directory.
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            database_future = pool.submit(_start_postgres, stack)
            broker_future = pool.submit(_start_redis, stack)
            s3_future = pool.submit(start_s3, stack)
            stack.emulator = BctrlEmulator(
                api_key=f"bctrl_celery_{secrets.token_hex(8)}", data_dir=root / "emulator", in_process=False
            ).start()
            stack.ports.append(int(stack.emulator.url.rsplit(":", 1)[1]))
            database, _ = database_future.result()
            broker = broker_future.result()
            s3_future.result()
        stack.timings["services"] = time.monotonic() - started
        api_port = free_port()
        stack.api_url = f"http://127.0.0.1:{api_port}"
        env = _airflow_env(stack, database=database, broker=broker, api_port=api_port)
        migrating = time.monotonic()
        migrate = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, check=False
        )
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"
            )
        stack.timings["db_migrate"] = time.monotonic() - migrating
        launching = time.monotonic()
        _start_airflow(stack, env, api_port)
        _wait_healthy(stack)
        stack.timings["airflow_healthy"] = time.monotonic() - launching
        stack.timings["start"] = time.monotonic() - started
        token = requests.get(f"{stack.api_url}/auth/token", timeout=(5, 30))
        token.raise_for_status()
        stack.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield stack
    finally:
        stopping = time.monotonic()
        stop(stack)
        stack.timings["stop"] = time.monotonic() - stopping
