"""Producer of the BCTRL asset pair: collect today's report into durable storage and announce it.

``collect_report`` copies the report a browser runtime wrote into the space's storage and records it
as a run artifact. Its ``outlets`` declare the asset ``bctrl://<space_id>/reports/daily``, so every
successful run emits an asset event; the operator puts the ids of what it stored into the event's
extra::

    {"file_id": "...", "artifact_id": "...", "run_id": "...", "runtime_id": "...",
     "space_id": "...", "path": "reports/daily/2030-01-01/<task instance id>.json",
     "uri": "bctrl://<space_id>/reports/daily/2030-01-01/<task instance id>.json"}

The asset is a *logical* dataset: its URI stays the same while each run stores a new file under it
(BCTRL refuses to overwrite a storage path with 409 ``storage_file.path_exists``, so every run and
every retry writes its own path). Consumers find the concrete file in the event's extra; see
``bctrl_asset_consumer`` and ``docs/assets.md``.

Configuration, all changeable without editing this file:

- the space: the environment variable ``BCTRL_SPACE_ID`` of the DAG processor and the workers. An
  asset URI is fixed when the file is parsed, so it cannot come from params, and reading an Airflow
  Variable at parse time would query the metadata DB at every parse;
- the BCTRL connection: param ``bctrl_conn_id`` (default ``bctrl_default``);
- the runtime: param ``runtime_id``, or when that is empty the Airflow Variable ``bctrl_runtime_id``;
- the file to collect: param ``output_path`` (default ``/tmp/runtime/output/report.json``).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_bctrl.assets import create_asset
from airflow_provider_bctrl.operators import BctrlCollectFileOperator

#: Read at parse time, like every asset URI. The placeholder keeps the file importable when the
#: variable is unset; a run then fails with BCTRL's 404 space.not_found, naming the placeholder.
SPACE_ID = os.environ.get("BCTRL_SPACE_ID") or "set-BCTRL_SPACE_ID"

#: The logical dataset both DAGs of the pair share (bctrl_asset_consumer builds the same asset).
DAILY_REPORTS = create_asset(space_id=SPACE_ID, path="reports/daily")

RUN_DAY = "{{ dag_run.run_after | ds }}"

with DAG(
    dag_id="bctrl_asset_producer",
    description="Collect the daily report from a BCTRL runtime and emit an asset event naming it.",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["bctrl", "example", "assets"],
    doc_md=__doc__,
    params={
        "bctrl_conn_id": Param(
            "bctrl_default", type="string", description="Airflow connection of type bctrl."
        ),
        "runtime_id": Param(
            "",
            type="string",
            description="BCTRL runtime that wrote the report. Empty: the Airflow Variable bctrl_runtime_id.",
        ),
        "output_path": Param(
            "/tmp/runtime/output/report.json",  # noqa: S108 - a path inside the runtime, not on the worker
            type="string",
            description="The report inside the runtime.",
        ),
    },
):
    BctrlCollectFileOperator(
        task_id="collect_report",
        bctrl_conn_id="{{ params.bctrl_conn_id }}",
        runtime_id="{{ params.runtime_id or var.value.get('bctrl_runtime_id', '') }}",
        path="{{ params.output_path }}",
        space_id=SPACE_ID,
        # A new storage path per task instance (ti.id changes with every try): never a 409 conflict.
        storage_path=f"reports/daily/{RUN_DAY}/{{{{ ti.id }}}}.json",
        name=f"report-{RUN_DAY}.json",
        artifact={"kind": "report", "name": f"daily-report-{RUN_DAY}"},
        outlets=[DAILY_REPORTS],
    )
