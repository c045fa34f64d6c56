# XComArgs (task outputs) stand in for values that Airflow resolves at run time; mypy cannot see that,
# so passing them where a str is annotated is allowed in this file.
# mypy: disable-error-code="arg-type, index"
"""A DAG that owns a BCTRL runtime's whole life: start it, feed it, wait for its output, stop it.

1. ``start_runtime`` (setup) starts the runtime and returns the run id. Its ``Idempotency-Key`` comes
   from the task instance, so its retries never open a second (billable) run.
2. ``write_input`` / ``upload_input`` put today's input into the runtime's workspace.
3. ``collect_output`` waits for the browser's output at ``output_path`` **in the triggerer**
   (``deferrable=True``: no worker slot is held while the browser works), then collects it once into
   durable storage as a run artifact. Your browser step (an agent, a Playwright script on the
   connect URL) is what writes that file; this DAG only waits for it.
4. ``download_output`` streams the collected file to object storage (``output_base``: a local
   ``file://`` folder by default, or ``s3://bucket/prefix`` with ``output_conn_id``).
5. ``stop_runtime`` (teardown) stops the runtime whether the tasks before it succeeded or failed, so
   a failed run does not leave a browser running. Stopping a runtime that is already stopped is fine.

Try it: ``airflow dags test bctrl_runtime_lifecycle -c '{"runtime_id": "<your runtime id>"}'``.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_bctrl.operators import (
    BctrlCollectFileOperator,
    BctrlDownloadFileOperator,
    BctrlStartRuntimeOperator,
    BctrlStopRuntimeOperator,
    BctrlUploadFileOperator,
)

#: Rendered at run time only, so parsing this file never reads a Variable.
RUNTIME_ID = "{{ params.runtime_id or var.value.get('bctrl_runtime_id', '') }}"
CONN_ID = "{{ params.bctrl_conn_id }}"
#: One file per DAG run under ``output_base`` (run ids hold ':' and '+').
OUTPUT_FILE = (
    "{{ params.output_base }}/bctrl-output-{{ run_id | replace(':', '-') | replace('+', '-') }}.json"
)

with DAG(
    dag_id="bctrl_runtime_lifecycle",
    description="Start a BCTRL runtime, wait (deferred) for its output, collect and download it, stop it.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["bctrl", "example"],
    doc_md=__doc__,
    params={
        "bctrl_conn_id": Param("bctrl_default", type="string", description="Connection of type bctrl."),
        "runtime_id": Param(
            "", type="string", description="Runtime to start. Empty: the Airflow Variable bctrl_runtime_id."
        ),
        "output_path": Param(
            "/tmp/runtime/output/results.json",  # noqa: S108 - a path inside the runtime
            type="string",
            description="File the browser writes inside the runtime; the DAG waits for it.",
        ),
        "output_base": Param(
            f"file://{tempfile.gettempdir()}",
            type="string",
            description="Existing folder or object storage prefix for the downloaded output, e.g. "
            "s3://bucket/prefix.",
        ),
        "output_conn_id": Param(
            "", type="string", description="Connection for an object storage output_base, e.g. aws_default."
        ),
    },
) as dag:
    start = BctrlStartRuntimeOperator(
        task_id="start_runtime",
        bctrl_conn_id=CONN_ID,
        runtime_id=RUNTIME_ID,
        # Safe to retry: every try sends the same Idempotency-Key, so a retry never opens a second run.
        retries=2,
        retry_delay=timedelta(seconds=10),
    )

    @task
    def write_input() -> str:
        """Write the input the browser works on (a list of sites) to the worker's temp folder."""
        context = get_current_context()
        folder = Path(tempfile.mkdtemp(prefix="bctrl-lifecycle-input-"))
        path = folder / "sites.csv"
        path.write_text(
            "site,url\n" + "".join(f"{s},https://{s}.example.com/\n" for s in ("alpha", "beta")),
            encoding="utf-8",
        )
        print(f"Input for run {context['run_id']} written to {path}")
        return str(path)

    upload = BctrlUploadFileOperator(
        task_id="upload_input",
        bctrl_conn_id=CONN_ID,
        runtime_id=RUNTIME_ID,
        source=write_input(),
        runtime_path="inputs/",
    )

    collect = BctrlCollectFileOperator(
        task_id="collect_output",
        bctrl_conn_id=CONN_ID,
        runtime_id=RUNTIME_ID,
        path="{{ params.output_path }}",
        artifact={"kind": "report", "metadata": {"run_id": "{{ ti.xcom_pull(task_ids='start_runtime') }}"}},
        wait_for_file=True,
        deferrable=True,
        poke_interval=2,
        timeout=30 * 60,
    )

    download = BctrlDownloadFileOperator(
        task_id="download_output",
        bctrl_conn_id=CONN_ID,
        file_id=collect.output["file_id"],
        destination=OUTPUT_FILE,
        destination_conn_id="{{ params.output_conn_id }}",
    )

    stop = BctrlStopRuntimeOperator(task_id="stop_runtime", bctrl_conn_id=CONN_ID, runtime_id=RUNTIME_ID)

    start >> upload >> collect >> download >> stop.as_teardown(setups=start)
