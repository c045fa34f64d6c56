# XComArgs (task outputs) stand in for values that Airflow resolves at run time; mypy cannot see that,
# so passing them where a str or dict is annotated is allowed in this file.
# mypy: disable-error-code="arg-type, index"
r"""Daily report through a BCTRL browser runtime: generate, upload, let the browser work, collect.

1. ``generate_report`` writes the day's CSV report to ``report_base``: the worker's temp folder by
   default, or object storage (``s3://bucket/reports`` with ``report_conn_id``) so that the upload can
   run on another worker (Celery, Kubernetes).
2. ``upload_report`` puts it into the runtime's workspace (``inputs/report-<day>.csv``); the upload is
   also kept as a durable space file whose id is pushed as the ``file_id`` XCom.
3. ``run_browser_agent`` is a **placeholder for your own step**: in real life it asks the BCTRL runtime
   (an agent or your Playwright script) to read the report and write its result to ``output_path``.
   Here it only logs what it would ask for, so the result file has to be in the runtime already.
4. ``collect_results`` copies ``output_path`` out of the runtime into durable storage and records it as
   a run artifact; the ids are pushed as ``file_id`` and ``artifact_id``.
5. ``download_results`` streams the collected file next to the report (``report_base`` again: object
   storage when set), so the result is readable outside BCTRL whichever worker ran the task.
6. ``hand_off`` receives those ids the two ways Airflow offers: an ``XComArg`` and a Jinja template.

``<day>`` is the run's logical date, or for a run without one (``"logical_date": null``, the default of
a trigger from the UI or the REST API in Airflow 3) the day it was triggered: such runs have no ``ds``.

Configuration, all changeable without editing this file:

- the BCTRL connection: param ``bctrl_conn_id`` (default ``bctrl_default``);
- the runtime: param ``runtime_id``, or when that is empty the Airflow Variable ``bctrl_runtime_id``;
- the file to collect: param ``output_path`` (default ``/tmp/runtime/output/results.json``);
- where the report is written: params ``report_base`` and ``report_conn_id`` (default: local temp folder).

Try it against the local emulator (``docs/emulator.md``): in a clone after the quickstart, run
``make emulator`` in one terminal, then in another::

    export AIRFLOW_HOME=~/airflow-bctrl-try
    export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW_CONN_BCTRL_DEFAULT="$(.venv/bin/python -m airflow_provider_bctrl.testing.client connection)"
    .venv/bin/airflow db migrate
    RT=$(.venv/bin/python -m airflow_provider_bctrl.testing.client create-runtime)
    .venv/bin/python -m airflow_provider_bctrl.testing.client write-file "$RT" /tmp/runtime/output/results.json --data '{"status": "ok"}'
    .venv/bin/airflow dags test bctrl_report_pipeline -c "{\"runtime_id\": \"$RT\"}"

Against BCTRL itself, set ``AIRFLOW_CONN_BCTRL_DEFAULT`` to your API key (``docs/connection.md``) and
pass the id of a runtime you started.
"""

from __future__ import annotations

import csv
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, Param, get_current_context, task

from airflow_provider_bctrl.operators.files import BctrlDownloadFileOperator
from airflow_provider_bctrl.operators.runtime_files import BctrlCollectFileOperator, BctrlUploadFileOperator

#: The runtime comes from the run's params, falling back to an Airflow Variable. Rendered at run time
#: only, so parsing this file never reads a Variable.
RUNTIME_ID = "{{ params.runtime_id or var.value.get('bctrl_runtime_id', '') }}"
CONN_ID = "{{ params.bctrl_conn_id }}"
#: The day the report is about. A run triggered with "logical_date": null has no ``ds`` (nor
#: ``logical_date``) in its context, so fall back to when the run was due: dag_run is always there.
REPORT_DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


def report_day(context: Any) -> str:
    """``REPORT_DAY`` for Python code: the logical date's day, else the day the run was due."""
    dag_run = context["dag_run"]
    return str((dag_run.logical_date or dag_run.run_after).strftime("%Y-%m-%d"))


with DAG(
    dag_id="bctrl_report_pipeline",
    description="Generate a report, hand it to a BCTRL browser runtime and collect the result.",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["bctrl", "example"],
    doc_md=__doc__,
    params={
        "bctrl_conn_id": Param(
            "bctrl_default", type="string", description="Airflow connection of type bctrl."
        ),
        "runtime_id": Param(
            "",
            type="string",
            description="BCTRL runtime to work in. Empty: the Airflow Variable bctrl_runtime_id.",
        ),
        "report_base": Param(
            "",
            type="string",
            description="Where generate_report writes: empty for the worker's temp folder, or object "
            "storage such as s3://bucket/reports when tasks run on different machines.",
        ),
        "report_conn_id": Param(
            "", type="string", description="Connection for an object storage report_base, e.g. aws_default."
        ),
        "output_path": Param(
            "/tmp/runtime/output/results.json",  # noqa: S108 - a path inside the runtime, not on the worker
            type="string",
            description="File the browser writes inside the runtime; collected after it worked.",
        ),
    },
) as dag:

    @task
    def generate_report() -> str:
        """Write the day's report as CSV under ``report_base`` and return its path or URI."""
        context = get_current_context()
        params = context["params"]
        run_dir = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        base = params["report_base"] or str(Path(tempfile.gettempdir()) / "bctrl-example-reports")
        folder = (
            ObjectStoragePath(base, conn_id=params["report_conn_id"] or None)
            / context["dag"].dag_id
            / run_dir
        )
        folder.mkdir(parents=True, exist_ok=True)
        report = folder / "report.csv"
        day = report_day(context)
        with report.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["date", "site", "url"])
            for site in ("alpha", "beta", "gamma"):
                writer.writerow([day, site, f"https://{site}.example.com/"])
        return str(report)  # a local path, or a URI the upload streams from object storage

    upload = BctrlUploadFileOperator(
        task_id="upload_report",
        bctrl_conn_id=CONN_ID,
        runtime_id=RUNTIME_ID,
        source=generate_report(),
        source_conn_id="{{ params.report_conn_id }}",
        name=f"report-{REPORT_DAY}.csv",
        runtime_path="inputs/",
        metadata={"report_date": REPORT_DAY, "dag_run": "{{ run_id }}"},
    )

    @task
    def run_browser_agent(staged: dict[str, Any]) -> None:
        """PLACEHOLDER: replace with the step that makes the browser work.

        ``staged`` is the upload's return value, the API's RuntimeStagedFile JSON. A real step would
        tell the runtime's agent to open ``staged["runtimePath"]`` and write its findings to the
        ``output_path`` param, then wait until it is done.
        """
        params = get_current_context()["params"]
        print(
            f"The browser would now read {staged['runtimePath']} (file {staged['id']}) "
            f"and write {params['output_path']} inside runtime {staged['runtimeId']}."
        )

    collect = BctrlCollectFileOperator(
        task_id="collect_results",
        bctrl_conn_id=CONN_ID,
        runtime_id=RUNTIME_ID,
        path="{{ params.output_path }}",
        name=f"results-{REPORT_DAY}.json",
        artifact={
            "kind": "report",
            "name": f"results-{REPORT_DAY}",
            "metadata": {
                "report_date": REPORT_DAY,
                "report_file_id": "{{ ti.xcom_pull(task_ids='upload_report', key='file_id') }}",
            },
        },
    )
    run_browser_agent(upload.output) >> collect

    BctrlDownloadFileOperator(
        task_id="download_results",
        bctrl_conn_id=CONN_ID,
        file_id=collect.output["file_id"],
        # The report's folder (trailing "/": keep the stored name): object storage when report_base
        # is, so the bytes stream from BCTRL straight into the bucket, with no local copy.
        destination="{{ ti.xcom_pull(task_ids='generate_report').rsplit('/', 1)[0] }}/",
        destination_conn_id="{{ params.report_conn_id }}",
    )

    @task
    def hand_off(file_id: str, artifact_id: str, staged_name: str) -> dict[str, str]:
        """Downstream work with the ids; here it just returns them for the next system to pick up."""
        print(f"Collected file {file_id} (artifact {artifact_id}) from the run that used {staged_name}.")
        return {"file_id": file_id, "artifact_id": artifact_id, "staged_name": staged_name}

    hand_off(
        # XComArg style: output["<key>"] pulls the XCom pushed under that key.
        file_id=collect.output["file_id"],
        # Jinja style: rendered just before the task runs.
        artifact_id="{{ ti.xcom_pull(task_ids='collect_results', key='artifact_id') }}",
        staged_name="{{ ti.xcom_pull(task_ids='upload_report')['name'] }}",
    )
