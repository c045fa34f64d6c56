"""Operators that work on durable BCTRL space files, independent of any runtime.

- :class:`BctrlDownloadFileOperator` streams a stored file's bytes to a local path or to any Airflow
  object storage destination (``s3://``, ``gs://``, ``memory://``, an ``ObjectStoragePath``).

Like the runtime-file operators, it imports neither ``requests`` nor the hook at module level: DAG
files import it at every parse.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_bctrl import DEFAULT_CONN_ID
from airflow_provider_bctrl._arguments import DownloadArguments
from airflow_provider_bctrl._storage import local_path_from_uri
from airflow_provider_bctrl.operators._base import BctrlBaseOperator, uri_ref

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

__all__ = ["BctrlDownloadFileOperator"]


class BctrlDownloadFileOperator(BctrlBaseOperator):
    """Download a durable BCTRL file to a local path or object storage.

    The bytes are streamed (``GET /v1/files/{fileId}/content``), never held in memory, and written
    atomically: they go to a temporary sibling that is moved into place only when every byte arrived,
    so a failed download leaves no half file behind and never clobbers an existing one. A download
    that breaks off is retried from the start (it is a read), up to the connection's ``max_retries``.

    XCom: ``return_value`` is where the bytes are, in the form you can open: for a local destination
    the absolute filesystem path as written (``/data/Q1 report/Übersicht.json``, no ``file://``, no
    percent-encoding: ``open(path)`` works); for object storage the URI (``s3://bucket/reports/report.json``,
    for ``ObjectStoragePath(uri)``). The key ``uri`` is pushed as well: always a URI, ``file:///...``
    (percent-encoded) for a local file.

    Assets: every :class:`~airflow.sdk.Asset` in ``outlets`` (typically the destination's own asset,
    such as ``Asset("s3://bucket/reports/latest.json")``) gets ``file_id``, ``destination`` (the same
    value as ``return_value``), ``destination_uri`` and the stored file's ``space_id``, ``path`` and
    ``uri`` in its event's extra.

    .. seealso::
        ``docs/operators/download.md`` for examples.

    :param file_id: the durable file's id, e.g. a collect's ``file_id`` XCom. (templated)
    :param destination: a local file path, an existing local directory or a path ending in ``/``
        (the stored file's name is used), an :class:`~airflow.sdk.ObjectStoragePath`, or an object
        storage URI such as ``s3://bucket/key``. A local directory must exist. (templated)
    :param destination_conn_id: the Airflow connection used to write an object storage
        ``destination`` URI (e.g. ``aws_default``); not used for local paths. (templated)
    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    :param hook_params: per-task ``timeout``, ``max_retries`` and ``max_retry_wait`` for the hook,
        overriding the connection's (see :class:`~airflow_provider_bctrl._arguments.HookParams`).
        (templated)
    """

    template_fields: Sequence[str] = (
        "file_id",
        "destination",
        "destination_conn_id",
        "bctrl_conn_id",
        "hook_params",
    )
    ui_color = "#fdf0d5"

    def __init__(
        self,
        *,
        file_id: str,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        destination_conn_id: str | None = None,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.file_id = file_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id

    def _arguments(self) -> DownloadArguments:
        """The rendered arguments, checked once (the hook does not check them again)."""
        return DownloadArguments.check(
            self.file_id, self.destination, destination_conn_id=self.destination_conn_id
        )

    def execute(self, context: Context) -> str:
        """Download the file; return the local path written (plain, not a URI) or the object storage URI."""
        args = self._arguments()
        uri = self.hook._download(args)
        written = local_path_from_uri(uri) or uri
        self._push_keys(context, {"uri": uri})
        self._downloaded_file_id = args.file_id
        self._lineage_inputs = []
        self._lineage_outputs = [uri_ref(uri)]
        if self._declared_assets:
            self._emit_asset_events(
                context,
                {
                    "file_id": args.file_id,
                    "destination": written,
                    "destination_uri": uri,
                    **self._location_extra(args.file_id),
                },
            )
        return written

    def _complete_lineage(self) -> None:
        if not self._lineage_inputs:
            self._add_space_file(self._lineage_inputs, getattr(self, "_downloaded_file_id", None))
