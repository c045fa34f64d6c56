# XComArgs (task outputs) stand in for values that Airflow resolves at run time; mypy cannot see that,
# so passing them where a str or dict is annotated is allowed in this file.
# mypy: disable-error-code="arg-type, index"
"""Upload a batch of files into a BCTRL runtime with dynamic task mapping.

``prepare_inputs`` decides at run time which files to send (here it writes ``file_count`` small CSVs;
in real life it might list a folder or a bucket). ``upload_inputs`` is mapped over that list with
``.partial()``/``.expand()``: one task instance per file, all sharing the runtime, the destination
folder ``inputs/batch/`` and templated metadata. ``summarise`` receives every mapped upload's return
value, and the ``file_id`` keys, as lists.

Configuration: param ``bctrl_conn_id`` (default ``bctrl_default``), param ``runtime_id`` or, when
empty, the Airflow Variable ``bctrl_runtime_id``, and param ``file_count``.

Try it: ``airflow dags test bctrl_upload_many -c '{"runtime_id": "<your runtime id>", "file_count": 3}'``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_bctrl.operators.runtime_files import BctrlUploadFileOperator

RUNTIME_ID = "{{ params.runtime_id or var.value.get('bctrl_runtime_id', '') }}"
CONN_ID = "{{ params.bctrl_conn_id }}"

with DAG(
    dag_id="bctrl_upload_many",
    description="Upload a run-time list of files into a BCTRL runtime, one mapped task per file.",
    schedule=None,
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
            description="BCTRL runtime to upload into. Empty: the Airflow Variable bctrl_runtime_id.",
        ),
        "file_count": Param(3, type="integer", minimum=1, maximum=50, description="How many files to send."),
    },
) as dag:

    @task
    def prepare_inputs() -> list[str]:
        """Write the files to send and return their paths (the list the upload is mapped over)."""
        context = get_current_context()
        run_dir = re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        out_dir = Path(tempfile.gettempdir()) / "bctrl-example-inputs" / context["dag"].dag_id / run_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for number in range(1, int(context["params"]["file_count"]) + 1):
            path = out_dir / f"targets-{number:02d}.csv"
            path.write_text(f"url\nhttps://site-{number}.example.com/\n", encoding="utf-8")
            paths.append(str(path))
        return paths

    upload_inputs = BctrlUploadFileOperator.partial(
        task_id="upload_inputs",
        bctrl_conn_id=CONN_ID,
        runtime_id=RUNTIME_ID,
        runtime_path="inputs/batch/",
        metadata={"batch": "{{ run_id }}", "part": "{{ ti.map_index }}"},
    ).expand(source=prepare_inputs())

    @task
    def summarise(staged_files: Sequence[dict[str, Any]], file_ids: Sequence[str]) -> dict[str, Any]:
        """Everything the batch produced, for the next step (e.g. telling the browser which files to open)."""
        staged = list(staged_files)
        paths = [item["runtimePath"] for item in staged]
        print(f"Uploaded {len(staged)} files into the runtime: {', '.join(paths)}")
        return {"file_ids": list(file_ids), "runtime_paths": paths}

    # upload_inputs.output is every mapped return value; output["file_id"] every pushed file_id.
    summarise(upload_inputs.output, upload_inputs.output["file_id"])
