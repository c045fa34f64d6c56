"""BCTRL operators.

The re-exports are cheap: importing them loads neither ``requests`` nor the hook, so DAG files can
``from airflow_provider_bctrl.operators import BctrlUploadFileOperator`` without slowing parsing.
"""

from __future__ import annotations

from airflow_provider_bctrl.operators.files import BctrlDownloadFileOperator
from airflow_provider_bctrl.operators.runtime_files import (
    BctrlCollectFileOperator,
    BctrlStageFileOperator,
    BctrlUploadFileOperator,
)
from airflow_provider_bctrl.operators.runtimes import BctrlStartRuntimeOperator, BctrlStopRuntimeOperator

__all__ = [
    "BctrlCollectFileOperator",
    "BctrlDownloadFileOperator",
    "BctrlStageFileOperator",
    "BctrlStartRuntimeOperator",
    "BctrlStopRuntimeOperator",
    "BctrlUploadFileOperator",
]
