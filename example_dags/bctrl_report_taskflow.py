# XComArgs (task outputs) stand in for values that Airflow resolves at run time; mypy cannot see that,
# so passing them where a str or dict is annotated is allowed in this file.
# mypy: disable-error-code="arg-type, index"
r"""The report pipeline of ``bctrl_report_pipeline`` written in TaskFlow style.

Python functions decorated with ``@task`` do the local work; the BCTRL operators move the files; all
values flow as ``XComArg`` objects, so there are no task ids in strings. The runtime id is itself an
upstream task's result: ``choose_runtime`` reads it from the params or the Airflow Variable
``bctrl_runtime_id`` — replace it with the call that starts a runtime for you, and everything
downstream keeps working.

``run_browser_agent`` is a **placeholder for your own step** (the browser reading the report and
writing ``output_path`` inside the runtime); in this example the result file must already be there.

Try it against the local emulator (``docs/emulator.md``): in a clone after the quickstart, run
``make emulator`` in one terminal, then in another::

    export AIRFLOW_HOME=~/airflow-bctrl-try
    export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW_CONN_BCTRL_DEFAULT="$(.venv/bin/python -m airflow_provider_bctrl.testing.client connection)"
    .venv/bin/airflow db migrate
    RT=$(.venv/bin/python -m airflow_provider_bctrl.testing.client create-runtime)
    .venv/bin/python -m airflow_provider_bctrl.testing.client write-file "$RT" /tmp/runtime/output/results.json --data '{"status": "ok"}'
    .venv/bin/airflow dags test bctrl_report_taskflow -c "{\"runtime_id\": \"$RT\"}"

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

from airflow.providers.common.compat.sdk import Param, Variable, dag, get_current_context, task

from airflow_provider_bctrl.operators.runtime_files import BctrlCollectFileOperator, BctrlUploadFileOperator

#: The day the report is about: the logical date's, or for a run triggered with "logical_date": null
#: (which has no ``ds`` in its context) the day the run was due.
REPORT_DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


@dag(
    dag_id="bctrl_report_taskflow",
    description="TaskFlow version of the BCTRL report pipeline.",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["bctrl", "example", "taskflow"],
    params={
        "bctrl_conn_id": Param(
            "bctrl_default", type="string", description="Airflow connection of type bctrl."
        ),
        "runtime_id": Param(
            "",
            type="string",
            description="BCTRL runtime to work in. Empty: the Airflow Variable bctrl_runtime_id.",
        ),
        "output_path": Param(
            "/tmp/runtime/output/results.json",  # noqa: S108 - a path inside the runtime, not on the worker
            type="string",
            description="File the browser writes inside the runtime; collected after it worked.",
        ),
    },
)
def bctrl_report_taskflow() -> None:
    """Generate a report, upload it, let the browser work, collect the result and hand the ids on."""

    @task
    def choose_runtime() -> str:
        """The runtime to use: param ``runtime_id``, else the Variable ``bctrl_runtime_id``.

        In production this is where you would start a BCTRL runtime and return its id.
        """
        runtime_id = get_current_context()["params"]["runtime_id"] or Variable.get(
            "bctrl_runtime_id", default=""
        )
        if not runtime_id:
            raise ValueError(
                "No runtime id: trigger with the param runtime_id or set the Airflow Variable "
                "bctrl_runtime_id."
            )
        return str(runtime_id)

    @task
    def generate_report() -> str:
        """Write the day's report as CSV on the worker and return its path."""
        context = get_current_context()
        run_dir = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        out_dir = Path(tempfile.gettempdir()) / "bctrl-example-reports" / context["dag"].dag_id / run_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        report = out_dir / "report.csv"
        dag_run = context["dag_run"]
        day = (dag_run.logical_date or dag_run.run_after).strftime("%Y-%m-%d")
        with report.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["date", "site", "url"])
            for site in ("alpha", "beta", "gamma"):
                writer.writerow([day, site, f"https://{site}.example.com/"])
        return str(report)

    @task
    def run_browser_agent(staged: dict[str, Any]) -> None:
        """PLACEHOLDER: replace with the step that makes the browser read the report and write its result."""
        params = get_current_context()["params"]
        print(f"The browser would now read {staged['runtimePath']} and write {params['output_path']}.")

    @task
    def hand_off(file_id: str, artifact_id: str | None, collected: dict[str, Any]) -> dict[str, Any]:
        """Downstream work with the ids; here it returns them for the next system to pick up."""
        print(f"Collected {collected['file']['name']} as file {file_id}, artifact {artifact_id}.")
        return {"file_id": file_id, "artifact_id": artifact_id, "size_bytes": collected["file"]["sizeBytes"]}

    runtime_id = choose_runtime()
    upload = BctrlUploadFileOperator(
        task_id="upload_report",
        bctrl_conn_id="{{ params.bctrl_conn_id }}",
        runtime_id=runtime_id,
        source=generate_report(),
        name=f"report-{REPORT_DAY}.csv",
        runtime_path="inputs/",
        metadata={"report_date": REPORT_DAY},
    )
    collect = BctrlCollectFileOperator(
        task_id="collect_results",
        bctrl_conn_id="{{ params.bctrl_conn_id }}",
        runtime_id=runtime_id,
        path="{{ params.output_path }}",
        name=f"results-{REPORT_DAY}.json",
        artifact={
            "kind": "report",
            "name": f"results-{REPORT_DAY}",
            # XComArgs work inside the mapping too; this one also makes upload_report upstream.
            "metadata": {"report_file_id": upload.output["file_id"], "report_date": REPORT_DAY},
        },
    )
    run_browser_agent(upload.output) >> collect
    hand_off(
        file_id=collect.output["file_id"],
        artifact_id=collect.output["artifact_id"],
        collected=collect.output,
    )


bctrl_report_taskflow()
