"""Operators that move files between an Airflow worker and a live BCTRL browser runtime.

- :class:`BctrlUploadFileOperator` puts a local or object storage file into a runtime's workspace
  (the bytes are also kept as a durable space file).
- :class:`BctrlCollectFileOperator` copies a file the runtime produced into durable space storage,
  optionally recording it as a run artifact.
- :class:`BctrlStageFileOperator` puts a file that is already in durable storage (for example one
  collected from another runtime) into a runtime's workspace, without uploading it again.

All are thin: they render and check their arguments, then hand the work to
:class:`~airflow_provider_bctrl.hooks.bctrl.BctrlHook`.

XCom contract (see ``docs/xcom.md``):

- ``return_value`` is the API response JSON exactly as BCTRL sent it (upload: the ``RuntimeStagedFile``
  object; collect: ``{"file": {...}, "artifact": {...} | null}``).
- Upload and stage also push ``file_id`` and ``runtime_path``; collect also pushes ``file_id`` and
  ``artifact_id`` (``None`` when no artifact was recorded).

Asset events (``docs/assets.md``): every :class:`~airflow.sdk.Asset` in a task's ``outlets`` gets the
ids of what the task moved in its event's ``extra``. Lineage: ``docs/lineage.md``.

This module is imported whenever a DAG file that uses the operators is parsed, so it imports
neither ``requests`` nor the hook at module level: the hook is created on first use in ``execute``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import conf

from airflow_provider_bctrl import DEFAULT_CONN_ID
from airflow_provider_bctrl._arguments import CollectArguments, StageArguments, UploadArguments
from airflow_provider_bctrl._storage import is_object_path, is_uri
from airflow_provider_bctrl.exceptions import BctrlInputError
from airflow_provider_bctrl.operators._base import (
    XCOM_FILE_ID,
    BctrlBaseOperator,
    location_extra,
    runtime_file_ref,
    space_file_ref,
    uri_ref,
)
from airflow_provider_bctrl.operators._waiting import (
    check_wait_arguments,
    collect_when_present,
    collected_from_event,
    defer_collect,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset, Context, ObjectStoragePath

    from airflow_provider_bctrl.models import CollectedFile

__all__ = ["BctrlCollectFileOperator", "BctrlStageFileOperator", "BctrlUploadFileOperator"]

#: XCom key collect pushes in addition to ``return_value`` and ``file_id``.
XCOM_ARTIFACT_ID = "artifact_id"


class BctrlUploadFileOperator(BctrlBaseOperator):
    """Upload a file into a live BCTRL runtime's workspace.

    The file is streamed from the worker's disk or from object storage, and BCTRL also keeps it as a
    durable space file, whose id is returned. Every argument can be a Jinja template or an ``XComArg`` (for example the runtime id
    returned by the task that started the runtime); ``metadata`` is rendered recursively, so templates
    inside its values work too.

    XCom: ``return_value`` is the API's ``RuntimeStagedFile`` JSON as received (``id``, ``name``,
    ``runtimeId``, ``runtimePath``, ``sizeBytes``, ``expiresAt``); the keys ``file_id`` (the durable
    file id) and ``runtime_path`` (where the runtime sees the file) are pushed as well.

    Assets: every :class:`~airflow.sdk.Asset` in ``outlets`` gets ``file_id``, ``runtime_id``,
    ``runtime_path`` and the stored file's ``space_id``, ``path`` and ``uri`` in its event's extra
    (looked up with one ``GET /v1/files/{id}``, only when there are outlets).

    .. seealso::
        ``docs/operators/upload.md`` for examples, ``docs/assets.md``, ``docs/lineage.md``.

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
    :param hook_params: per-task ``timeout``, ``max_retries`` and ``max_retry_wait`` for the hook,
        overriding the connection's (see :class:`~airflow_provider_bctrl._arguments.HookParams`).
        (templated)
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
        "hook_params",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"metadata": "json", "hook_params": "json"}
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

    def _arguments(self) -> UploadArguments:
        """The rendered arguments, checked once (the hook does not check them again)."""
        return UploadArguments.check(
            self.runtime_id,
            self.source,
            name=self.name,
            runtime_path=self.runtime_path,
            destination_path=self.destination_path,
            metadata=self.metadata,
            source_conn_id=self.source_conn_id,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """Upload the file; return the API's ``RuntimeStagedFile`` JSON and push ``file_id``/``runtime_path``."""
        args = self._arguments()
        staged = self.hook._upload(args)
        self._uploaded_file_id = staged.id
        self._lineage_inputs = [uri_ref(_source_uri(args.source))]
        return self._report_staged(context, staged, args.runtime_id, locate=True)

    def _complete_lineage(self) -> None:
        # The upload response names no space or storage path: look the stored copy up (once).
        self._add_space_file(self._lineage_outputs, getattr(self, "_uploaded_file_id", None))


def _source_uri(source: Any) -> str:
    """A checked upload source as a URI for lineage: ``file:///abs/path`` or the object storage URI."""
    if is_uri(source) or is_object_path(source):
        return str(source)
    return Path(source).resolve().as_uri()


class BctrlCollectFileOperator(BctrlBaseOperator):
    """Collect a file from a live BCTRL runtime into durable space storage.

    Optionally the file is also recorded as a run artifact (pass ``artifact``). Every argument can be
    a Jinja template or an ``XComArg``; ``artifact`` is rendered recursively, including its
    ``metadata``.

    XCom: ``return_value`` is the API's response JSON as received, ``{"file": {...}, "artifact":
    {...} | null}``; the keys ``file_id`` (the stored file's id) and ``artifact_id`` (``None`` when no
    artifact was recorded) are pushed as well.

    Assets: every :class:`~airflow.sdk.Asset` in ``outlets`` gets ``file_id``, ``artifact_id`` and
    ``run_id`` (when an artifact was recorded), ``runtime_id``, ``space_id``, ``path`` (the stored
    file's storage path) and ``uri`` (``bctrl://<space_id>/<path>``) in its event's extra. With
    ``space_id`` and ``storage_path`` given as plain strings, :attr:`asset` is that file's asset.

    .. seealso::
        ``docs/operators/collect.md`` for examples, ``docs/assets.md``, ``docs/lineage.md``.

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
    :param hook_params: per-task ``timeout``, ``max_retries`` and ``max_retry_wait`` for the hook,
        overriding the connection's (see :class:`~airflow_provider_bctrl._arguments.HookParams`).
        (templated)
    :param wait_for_file: while the runtime has no file at ``path`` (404 ``runtime_file.not_found``),
        wait for it instead of failing; see ``docs/operators/collect.md``, "Waiting for the file".
    :param poke_interval: seconds between polls while waiting (at least 0.1).
    :param timeout: seconds to wait for the file at most, then fail with ``BctrlFileWaitTimeoutError``
        (each request's own timeout is the connection's, or ``hook_params['timeout']``).
    :param deferrable: wait in the triggerer, freeing the worker slot; default: the
        ``[operators] default_deferrable`` setting.
    """

    template_fields: Sequence[str] = (
        "runtime_id",
        "path",
        "space_id",
        "storage_path",
        "name",
        "artifact",
        "bctrl_conn_id",
        "hook_params",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"artifact": "json", "hook_params": "json"}
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
        wait_for_file: bool = False,
        poke_interval: float = 5.0,
        timeout: float = 60 * 60,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.runtime_id = runtime_id
        self.path = path
        self.space_id = space_id
        self.storage_path = storage_path
        self.name = name
        self.artifact = artifact
        self.wait_for_file = wait_for_file
        self.deferrable = deferrable
        # Checked now: a bad interval or timeout is a DAG authoring error, shown at parse time.
        self.poke_interval, self.timeout = (
            check_wait_arguments(poke_interval, timeout) if wait_for_file else (poke_interval, timeout)
        )

    def _arguments(self) -> CollectArguments:
        """The rendered arguments, checked once (the hook does not check them again)."""
        return CollectArguments.check(
            self.runtime_id,
            self.path,
            space_id=self.space_id,
            storage_path=self.storage_path,
            name=self.name,
            artifact=self.artifact,
        )

    @property
    def asset(self) -> Asset:
        """The asset ``bctrl://<space_id>/<storage_path>`` this task writes, for ``outlets`` or a schedule.

        Needs ``space_id`` and ``storage_path`` as plain strings (not templates): an asset is fixed
        when the DAG is parsed.

        :raises BctrlInputError: when either is missing or templated.
        """
        from airflow_provider_bctrl.assets import create_asset

        for argument in ("space_id", "storage_path"):
            value = getattr(self, argument)
            if not isinstance(value, str) or "{{" in value or "{%" in value:
                raise BctrlInputError(
                    f"{self.task_id}.asset needs {argument} as a plain string, got {value!r}; an asset is "
                    "fixed at parse time. Use airflow_provider_bctrl.assets.create_asset() for a logical "
                    "dataset instead."
                )
        return create_asset(space_id=self.space_id, path=self.storage_path)  # type: ignore[arg-type]

    def execute(self, context: Context) -> dict[str, Any]:
        """Collect the file; return the API's response JSON and push ``file_id``/``artifact_id``."""
        args = self._arguments()
        if self.wait_for_file and self.deferrable:
            # The trigger needs a concrete space: resolve the default here, once, with the hook.
            args = dataclasses.replace(args, space_id=args.space_id or self.hook.get_default_space_id())
            # Raises TaskDeferred: the task resumes in execute_complete with the trigger's event.
            defer_collect(self, args, poke_interval=self.poke_interval, timeout=self.timeout)
        if self.wait_for_file:
            collected = collect_when_present(
                self.hook, args, poke_interval=self.poke_interval, timeout=self.timeout, log=self.log
            )
        else:
            collected = self.hook._collect(args)
        return self._finish(context, args, collected)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, space_id: str | None = None
    ) -> dict[str, Any]:
        """Resume after the deferred wait: the trigger already collected; no second request is sent."""
        args = self._arguments()
        args = dataclasses.replace(
            args, space_id=space_id or args.space_id or self.hook.get_default_space_id()
        )
        collected = collected_from_event(
            event, runtime_id=args.runtime_id, path=args.path, timeout=self.timeout
        )
        self.log.info(
            "Collected file %s%s after %s polls in the triggerer",
            collected.file.id,
            f" as artifact {collected.artifact.id}" if collected.artifact else "",
            (event or {}).get("polls", "?"),
        )
        return self._finish(context, args, collected)

    def _finish(self, context: Context, args: CollectArguments, collected: CollectedFile) -> dict[str, Any]:
        """Push the XCom keys, lineage and asset events of a finished collect; return its JSON."""
        artifact = collected.artifact
        artifact_id = artifact.id if artifact is not None else None
        self._push_keys(context, {XCOM_FILE_ID: collected.file.id, XCOM_ARTIFACT_ID: artifact_id})
        # Resolved by collect_file already (the argument, else the connection's or the key's default).
        space_id = args.space_id or self.hook.get_default_space_id()
        self._lineage_inputs = [runtime_file_ref(args.runtime_id, args.path)]
        self._collected_file_id = collected.file.id
        location = location_extra(space_id, collected.file.path) if collected.file.path else {}
        self._lineage_outputs = [space_file_ref(space_id, collected.file.path)] if collected.file.path else []
        if self._declared_assets:
            self._emit_asset_events(
                context,
                {
                    XCOM_FILE_ID: collected.file.id,
                    XCOM_ARTIFACT_ID: artifact_id,
                    "run_id": artifact.run_id if artifact is not None else None,
                    "runtime_id": args.runtime_id,
                    **(location or self._location_extra(collected.file.id)),
                },
            )
        return collected.raw

    def _complete_lineage(self) -> None:
        if not self._lineage_outputs:  # the response had no path
            self._add_space_file(self._lineage_outputs, getattr(self, "_collected_file_id", None))


class BctrlStageFileOperator(BctrlBaseOperator):
    """Put a file that is already in BCTRL durable storage into a live runtime's workspace.

    No bytes pass through the worker: BCTRL copies the stored file (``POST
    /v1/runtimes/{runtimeId}/files/stage``). The natural follow-up of a collect in another runtime, or
    of an upload whose file a second runtime needs too. Every argument can be a Jinja template or an
    ``XComArg``, e.g. ``collect.output["file_id"]``.

    XCom: ``return_value`` is the API's ``RuntimeStagedFile`` JSON as received (``id`` is the durable
    file id that was staged); the keys ``file_id`` and ``runtime_path`` are pushed as well, like
    upload's.

    Assets: every :class:`~airflow.sdk.Asset` in ``outlets`` gets ``file_id``, ``runtime_id`` and
    ``runtime_path`` in its event's extra.

    .. seealso::
        ``docs/operators/stage.md`` for examples.

    :param runtime_id: the runtime to receive the file. (templated)
    :param file_id: the durable file's id, from an upload or a collect (their ``file_id`` XCom).
        (templated)
    :param runtime_path: destination relative to the runtime workspace, e.g. ``"inputs/report.csv"``;
        a trailing ``/`` names a directory. Default: chosen by BCTRL. (templated)
    :param name: the file's name in the runtime; default: the stored file's name. (templated)
    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    :param hook_params: per-task ``timeout``, ``max_retries`` and ``max_retry_wait`` for the hook,
        overriding the connection's (see :class:`~airflow_provider_bctrl._arguments.HookParams`).
        (templated)
    """

    template_fields: Sequence[str] = (
        "runtime_id",
        "file_id",
        "runtime_path",
        "name",
        "bctrl_conn_id",
        "hook_params",
    )
    ui_color = "#e8e0f5"

    def __init__(
        self,
        *,
        runtime_id: str,
        file_id: str,
        runtime_path: str | None = None,
        name: str | None = None,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(bctrl_conn_id=bctrl_conn_id, **kwargs)
        self.runtime_id = runtime_id
        self.file_id = file_id
        self.runtime_path = runtime_path
        self.name = name

    def _arguments(self) -> StageArguments:
        """The rendered arguments, checked once (the hook does not check them again)."""
        return StageArguments.check(
            self.runtime_id, self.file_id, runtime_path=self.runtime_path, name=self.name
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """Stage the file; return the API's ``RuntimeStagedFile`` JSON and push ``file_id``/``runtime_path``."""
        args = self._arguments()
        staged = self.hook._stage(args)
        self.log.info("Staged file %s into runtime %s at %s", staged.id, args.runtime_id, staged.runtime_path)
        self._staged_file_id = args.file_id
        self._lineage_inputs = []
        return self._report_staged(context, staged, args.runtime_id, locate=False)

    def _complete_lineage(self) -> None:
        if not self._lineage_inputs:
            self._add_space_file(self._lineage_inputs, getattr(self, "_staged_file_id", None))
