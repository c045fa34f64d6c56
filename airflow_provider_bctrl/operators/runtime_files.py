"""Operators that move files between an Airflow worker and a live BCTRL browser runtime.

- :class:`BctrlUploadFileOperator` puts a local or object storage file into a runtime's workspace
  (the bytes are also kept as a durable space file).
- :class:`BctrlCollectFileOperator` copies a file the runtime produced into durable space storage,
  optionally recording it as a run artifact.

Both are thin: they render and check their arguments, then hand the work to
:class:`~airflow_provider_bctrl.hooks.bctrl.BctrlHook`.

XCom contract (see ``docs/xcom.md``):

- ``return_value`` is the API response JSON exactly as BCTRL sent it (upload: the ``RuntimeStagedFile``
  object; collect: ``{"file": {...}, "artifact": {...} | null}``).
- Upload also pushes ``file_id`` and ``runtime_path``; collect also pushes ``file_id`` and
  ``artifact_id`` (``None`` when no artifact was recorded).

This module is imported whenever a DAG file that uses the operators is parsed, so it imports
neither ``requests`` nor the hook at module level: the hook is created on first use in ``execute``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_bctrl import DEFAULT_CONN_ID
from airflow_provider_bctrl._storage import is_object_path, is_uri
from airflow_provider_bctrl._validation import (
    check_artifact,
    check_id,
    check_json_object,
    check_local_file,
    check_name,
    check_runtime_path,
    check_runtime_source_path,
    check_storage_path,
)

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

__all__ = ["BctrlCollectFileOperator", "BctrlUploadFileOperator"]

#: XCom keys pushed in addition to ``return_value``.
XCOM_FILE_ID = "file_id"
XCOM_RUNTIME_PATH = "runtime_path"
XCOM_ARTIFACT_ID = "artifact_id"


class _BctrlRuntimeFileOperator(BaseOperator):
    """Shared plumbing: the connection id, the lazily created hook and the extra XCom keys."""

    # Paths such as "report.sql" or "query.json" must never be read as template files.
    template_ext: Sequence[str] = ()

    def __init__(self, *, bctrl_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bctrl_conn_id = bctrl_conn_id

    @cached_property
    def hook(self) -> BctrlHook:
        """The hook for ``bctrl_conn_id``, created on first use (never while the DAG is parsed)."""
        from airflow_provider_bctrl.hooks.bctrl import BctrlHook

        return BctrlHook(bctrl_conn_id=check_id(self.bctrl_conn_id, "bctrl_conn_id"))

    def _push_keys(self, context: Context, values: Mapping[str, Any]) -> None:
        # Keys follow do_xcom_push like return_value does, so do_xcom_push=False pushes nothing.
        if not self.do_xcom_push:
            return
        ti = context["ti"]
        for key, value in values.items():
            ti.xcom_push(key=key, value=value)


class BctrlUploadFileOperator(_BctrlRuntimeFileOperator):
    """Upload a file into a live BCTRL runtime's workspace.

    The file is streamed from the worker's disk or from object storage, and BCTRL also keeps it as a
    durable space file, whose id is returned. Every argument can be a Jinja template or an ``XComArg`` (for example the runtime id
    returned by the task that started the runtime); ``metadata`` is rendered recursively, so templates
    inside its values work too.

    XCom: ``return_value`` is the API's ``RuntimeStagedFile`` JSON as received (``id``, ``name``,
    ``runtimeId``, ``runtimePath``, ``sizeBytes``, ``expiresAt``); the keys ``file_id`` (the durable
    file id) and ``runtime_path`` (where the runtime sees the file) are pushed as well.

    .. seealso::
        ``docs/operators/upload.md`` for examples.

    :param runtime_id: the runtime to receive the file, e.g. ``"{{ params.runtime_id }}"`` or the output
        of the task that started the runtime. (templated)
    :param source: the file to upload: a local path on the worker, an
        :class:`~airflow.sdk.ObjectStoragePath`, or an object storage URI such as
        ``s3://bucket/key`` (streamed, no local copy). (templated)
    :param name: display name, also the file's name in the runtime; default: the local file's name.
        (templated)
    :param runtime_path: destination relative to the runtime workspace, e.g. ``"inputs/report.csv"``;
        a trailing ``/`` names a directory. Default: chosen by BCTRL. (templated)
    :param destination_path: durable storage path for the stored copy (relative, no ``.``/``..``
        segments); default: a path BCTRL manages. (templated)
    :param metadata: a JSON object of your own stored with the file. (templated, recursively)
    :param source_conn_id: the Airflow connection used to read an object storage ``source`` URI
        (e.g. ``aws_default``); not used for local paths. (templated)
    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    """

    template_fields: Sequence[str] = (
        "runtime_id",
        "source",
        "name",
        "runtime_path",
        "destination_path",
        "metadata",
        "source_conn_id",
        "bctrl_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"metadata": "json"}
    ui_color = "#d6ecfa"

    def __init__(
        self,
        *,
        runtime_id: str,
        source: str | os.PathLike[str] | ObjectStoragePath,
        name: str | None = None,
        runtime_path: str | None = None,
        destination_path: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source_conn_id: str | None = None,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.runtime_id = runtime_id
        self.source = source
        self.name = name
        self.runtime_path = runtime_path
        self.destination_path = destination_path
        self.metadata = metadata
        self.source_conn_id = source_conn_id

    def _checked_source(self) -> Any:
        source = self.source
        if is_uri(source) or is_object_path(source):
            # Object storage: the hook checks that the object exists before it sends anything.
            if self.source_conn_id is not None:
                check_id(self.source_conn_id, "source_conn_id")
            return source
        return check_local_file(source, "source")

    def _checked_arguments(self) -> dict[str, Any]:
        """The rendered arguments, checked; raises ``BctrlInputError`` naming the first bad one."""
        return {
            "runtime_id": check_id(self.runtime_id, "runtime_id"),
            "source": self._checked_source(),
            "name": None if self.name is None else check_name(self.name, "name"),
            "runtime_path": (
                None if self.runtime_path is None else check_runtime_path(self.runtime_path, "runtime_path")
            ),
            "destination_path": (
                None
                if self.destination_path is None
                else check_storage_path(self.destination_path, "destination_path")
            ),
            "metadata": None if self.metadata is None else check_json_object(self.metadata, "metadata"),
        }

    def execute(self, context: Context) -> dict[str, Any]:
        """Upload the file; return the API's ``RuntimeStagedFile`` JSON and push ``file_id``/``runtime_path``."""
        args = self._checked_arguments()
        staged = self.hook.upload_file(
            args["runtime_id"],
            args["source"],
            name=args["name"],
            runtime_path=args["runtime_path"],
            destination_path=args["destination_path"],
            metadata=args["metadata"],
            source_conn_id=self.source_conn_id,
        )
        self._push_keys(context, {XCOM_FILE_ID: staged.id, XCOM_RUNTIME_PATH: staged.runtime_path})
        return staged.raw


class BctrlCollectFileOperator(_BctrlRuntimeFileOperator):
    """Collect a file from a live BCTRL runtime into durable space storage.

    Optionally the file is also recorded as a run artifact (pass ``artifact``). Every argument can be
    a Jinja template or an ``XComArg``; ``artifact`` is rendered recursively, including its
    ``metadata``.

    XCom: ``return_value`` is the API's response JSON as received, ``{"file": {...}, "artifact":
    {...} | null}``; the keys ``file_id`` (the stored file's id) and ``artifact_id`` (``None`` when no
    artifact was recorded) are pushed as well.

    .. seealso::
        ``docs/operators/collect.md`` for examples.

    :param runtime_id: the runtime that holds the file. (templated)
    :param path: the file inside the runtime, absolute (``/tmp/runtime/output/results.json``) or
        relative to the runtime workspace. (templated)
    :param space_id: the space to store the file in; default: the connection's ``space_id`` extra,
        else the API key's default space. (templated)
    :param storage_path: destination path in space storage (relative, no ``.``/``..`` segments);
        default: a path BCTRL manages. (templated)
    :param name: display name of the stored file; default: the runtime file's name. (templated)
    :param artifact: record the file as a run artifact: a mapping with optional ``kind``, ``name``
        and ``metadata`` (a JSON object). (templated, recursively)
    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    """

    template_fields: Sequence[str] = (
        "runtime_id",
        "path",
        "space_id",
        "storage_path",
        "name",
        "artifact",
        "bctrl_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"artifact": "json"}
    ui_color = "#d9f2e3"

    def __init__(
        self,
        *,
        runtime_id: str,
        path: str,
        space_id: str | None = None,
        storage_path: str | None = None,
        name: str | None = None,
        artifact: Mapping[str, Any] | None = None,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.runtime_id = runtime_id
        self.path = path
        self.space_id = space_id
        self.storage_path = storage_path
        self.name = name
        self.artifact = artifact

    def _checked_arguments(self) -> dict[str, Any]:
        """The rendered arguments, checked; raises ``BctrlInputError`` naming the first bad one."""
        return {
            "runtime_id": check_id(self.runtime_id, "runtime_id"),
            "path": check_runtime_source_path(self.path, "path"),
            "space_id": None if self.space_id is None else check_id(self.space_id, "space_id"),
            "storage_path": (
                None if self.storage_path is None else check_storage_path(self.storage_path, "storage_path")
            ),
            "name": None if self.name is None else check_name(self.name, "name"),
            "artifact": None if self.artifact is None else check_artifact(self.artifact, "artifact"),
        }

    def execute(self, context: Context) -> dict[str, Any]:
        """Collect the file; return the API's response JSON and push ``file_id``/``artifact_id``."""
        args = self._checked_arguments()
        collected = self.hook.collect_file(
            args["runtime_id"],
            args["path"],
            space_id=args["space_id"],
            storage_path=args["storage_path"],
            name=args["name"],
            artifact=args["artifact"],
        )
        artifact_id = collected.artifact.id if collected.artifact is not None else None
        self._push_keys(context, {XCOM_FILE_ID: collected.file.id, XCOM_ARTIFACT_ID: artifact_id})
        return collected.raw
