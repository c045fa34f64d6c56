"""What every BCTRL operator shares: the lazily created hook, extra XCom keys, asset events, lineage.

Imported at every parse of a DAG file that uses the operators, so nothing heavy is imported here:
the hook is created on first use, and OpenLineage classes are imported only inside the lineage
methods, which the OpenLineage listener calls after a task ran.

Lineage naming (``docs/lineage.md``):

- a durable space file: namespace ``bctrl://<space_id>``, name = its storage path (the same as the
  ``bctrl://<space_id>/<path>`` asset URI);
- a file in a runtime's workspace: namespace ``bctrl-runtime://<runtime_id>``, name = its path in the
  runtime as the API reported or was given it;
- a local file: namespace ``file``, name = the absolute path;
- object storage: namespace ``<scheme>://<bucket>``, name = the key.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import Asset, BaseOperator

from airflow_provider_bctrl import DEFAULT_CONN_ID
from airflow_provider_bctrl._arguments import HookParams, check_hook_params, check_hook_params_keys
from airflow_provider_bctrl._validation import check_id
from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_1_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_bctrl.hooks.bctrl import BctrlHook
    from airflow_provider_bctrl.models import RuntimeStagedFile

#: OpenLineage namespace prefix of files inside a runtime's workspace.
RUNTIME_NAMESPACE_SCHEME = "bctrl-runtime"
#: XCom keys pushed in addition to ``return_value`` by the operators that move a file.
XCOM_FILE_ID = "file_id"
XCOM_RUNTIME_PATH = "runtime_path"


@dataclass(frozen=True)
class DatasetRef:
    """One side of a transfer as an OpenLineage (namespace, name) pair, built without OpenLineage."""

    namespace: str
    name: str


def space_file_ref(space_id: str, path: str) -> DatasetRef:
    """A durable file in a space: ``bctrl://<space_id>`` + storage path."""
    return DatasetRef(namespace=f"bctrl://{space_id}", name=path)


def runtime_file_ref(runtime_id: str, path: str) -> DatasetRef:
    """A file in a runtime's workspace: ``bctrl-runtime://<runtime_id>`` + path in the runtime."""
    return DatasetRef(namespace=f"{RUNTIME_NAMESPACE_SCHEME}://{runtime_id}", name=path)


def location_extra(space_id: str, path: str) -> dict[str, Any]:
    """The asset event extra naming a durable file: ``space_id``, ``path`` and its ``bctrl://`` ``uri``."""
    return {"space_id": space_id, "path": path, "uri": f"bctrl://{space_id}/{path}"}


def uri_ref(uri: str) -> DatasetRef:
    """A local (``file:///abs/path``) or object storage URI (``s3://bucket/key``) as a dataset."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("", "file"):
        return DatasetRef(namespace="file", name=urllib.parse.unquote(parts.path))
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        # universal-pathlib < 0.3 (Airflow 2.11-3.1) writes fsspec's memory paths as memory:///bucket/key:
        # the same object, so the same dataset as memory://bucket/key.
        bucket, _, key = key.partition("/")
    return DatasetRef(namespace=f"{parts.scheme}://{bucket}", name=key)


class BctrlBaseOperator(BaseOperator):
    """Shared plumbing: the connection id, the lazily created hook, extra XCom keys, asset events, lineage.

    Subclasses fill ``self._lineage_inputs`` / ``self._lineage_outputs`` in ``execute`` (durable files
    that need a lookup are added by :meth:`_add_space_file` in ``_complete_lineage``, only when lineage
    is asked for) and call :meth:`_emit_asset_events`.

    :param bctrl_conn_id: the Airflow connection of type ``bctrl`` to use. (templated)
    :param hook_params: per-task overrides of the connection's settings, passed to
        :class:`~airflow_provider_bctrl.hooks.bctrl.BctrlHook`: ``timeout`` (seconds per request),
        ``max_retries`` and ``max_retry_wait`` (seconds), e.g. ``{"timeout": 600}`` for one slow
        upload. An unknown key fails when the DAG is parsed. (templated)
    """

    # Paths such as "report.sql" or "query.json" must never be read as template files.
    template_ext: Sequence[str] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {"hook_params": "json"}

    def __init__(
        self,
        *,
        bctrl_conn_id: str = DEFAULT_CONN_ID,
        hook_params: HookParams | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_hook_params_keys(hook_params)
        self.bctrl_conn_id = bctrl_conn_id
        self.hook_params = hook_params
        self._lineage_inputs: list[DatasetRef] = []
        self._lineage_outputs: list[DatasetRef] = []

    @cached_property
    def hook(self) -> BctrlHook:
        """The hook for ``bctrl_conn_id`` with ``hook_params``, created on first use (never at parse time).

        :raises BctrlInputError: when ``bctrl_conn_id`` or ``hook_params`` is unusable (no request is sent).
        """
        from airflow_provider_bctrl.hooks.bctrl import BctrlHook

        conn_id = check_id(self.bctrl_conn_id, "bctrl_conn_id")
        return BctrlHook(bctrl_conn_id=conn_id, **self._checked_hook_params)

    @cached_property
    def _checked_hook_params(self) -> HookParams:
        """The rendered ``hook_params``, checked once (for the hook, and for a trigger when deferring)."""
        return check_hook_params(self.hook_params)

    def _close_hook(self) -> None:
        # Only a hook that was created; closing drops the pooled connections (a later use reopens).
        hook = self.__dict__.get("hook")
        if hook is not None:
            hook.close()

    def post_execute(self, context: Any, result: Any = None) -> None:
        """Close the hook's pooled connections once the work is done."""
        super().post_execute(context, result)
        self._close_hook()

    def on_kill(self) -> None:
        """Close the hook's connections when the task is killed: an upload in flight stops sending."""
        self._close_hook()

    def _push_keys(self, context: Context, values: Mapping[str, Any]) -> None:
        # Keys follow do_xcom_push like return_value does, so do_xcom_push=False pushes nothing.
        if not self.do_xcom_push:
            return
        ti = context["ti"]
        for key, value in values.items():
            if value is None and not AIRFLOW_V_3_1_PLUS:
                # Airflow 3.0's execution API rejects a None XCom value; pulling the key gives None all the same.
                continue
            ti.xcom_push(key=key, value=value)

    def _report_staged(
        self, context: Context, staged: RuntimeStagedFile, runtime_id: str, *, locate: bool
    ) -> dict[str, Any]:
        """What upload and stage report for the file they put into a runtime; returns its JSON.

        Pushes ``file_id`` and ``runtime_path``, names the runtime file as the lineage output and adds
        the ids to the outlet assets' events.

        :param locate: add the stored copy's ``space_id``, ``path`` and ``uri`` to the events (one lookup).
        """
        self._push_keys(context, {XCOM_FILE_ID: staged.id, XCOM_RUNTIME_PATH: staged.runtime_path})
        runtime_id = staged.runtime_id or runtime_id
        self._lineage_outputs = (
            [runtime_file_ref(runtime_id, staged.runtime_path)] if staged.runtime_path else []
        )
        if self._declared_assets:
            extra = {
                XCOM_FILE_ID: staged.id,
                "runtime_id": runtime_id,
                XCOM_RUNTIME_PATH: staged.runtime_path,
            }
            self._emit_asset_events(context, {**extra, **(self._location_extra(staged.id) if locate else {})})
        return staged.raw

    # ------------------------------------------------------------------------------ asset events

    @property
    def _declared_assets(self) -> list[Asset]:
        """The concrete assets the DAG author listed in ``outlets`` (aliases and refs are left alone)."""
        return [outlet for outlet in self.outlets if isinstance(outlet, Asset)]

    def _emit_asset_events(self, context: Context, extra: Mapping[str, Any]) -> None:
        """Add ``extra`` (the ids of what this task produced) to the event of every declared outlet asset.

        Only outlets the DAG author declared get events; nothing is invented at run time. ``None``
        values are left out so consumers can test with ``"artifact_id" in extra``.
        """
        assets = self._declared_assets
        if not assets:
            return
        values = {key: value for key, value in extra.items() if value is not None}
        outlet_events = context["outlet_events"]
        for asset in assets:
            outlet_events[asset].extra.update(values)
        self.log.info("Asset event extra for %s: %s", ", ".join(a.uri for a in assets), values)

    # ------------------------------------------------------------------------------ lineage

    def _stored_location(self, file_id: str) -> tuple[str, str] | None:
        """``(space_id, path)`` of the durable file ``file_id``, from ``GET /v1/files/{id}`` (once per task).

        Used for lineage and asset event extras, which must never fail a transfer that worked: a
        failed lookup is logged and gives ``None``.
        """
        cache: dict[str, tuple[str, str] | None] = self.__dict__.setdefault("_stored_location_cache", {})
        if file_id not in cache:
            try:
                stored = self.hook.get_file(file_id)
            except Exception as exc:
                self.log.warning("Could not look up BCTRL file %s for lineage/asset events: %s", file_id, exc)
                return None
            if stored.space_id and stored.path:
                cache[file_id] = (stored.space_id, stored.path)
            else:
                self.log.warning("BCTRL file %s has no space id or path in its metadata", file_id)
                cache[file_id] = None
        return cache[file_id]

    def _location_extra(self, file_id: str) -> dict[str, Any]:
        """``space_id``, ``path`` and the concrete ``uri`` of a durable file, for an asset event's extra."""
        location = self._stored_location(file_id)
        if location is None:
            return {}
        return location_extra(*location)

    def _add_space_file(self, refs: list[DatasetRef], file_id: str | None) -> None:
        """Put the durable file ``file_id`` (looked up) first in ``refs``, unless it is there or unknown."""
        location = self._stored_location(file_id) if file_id is not None else None
        stored = space_file_ref(*location) if location is not None else None
        if stored is not None and stored not in refs:
            refs.insert(0, stored)

    def _complete_lineage(self) -> None:
        """Hook for subclasses: fill in lineage that needs a lookup (runs only when lineage is asked for)."""

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage inputs and outputs of the transfer that just ran (see ``docs/lineage.md``).

        Called by the OpenLineage provider's listener after ``execute`` succeeded; needs
        ``apache-airflow-providers-openlineage`` (the ``openlineage`` extra).

        :param task_instance: the finished task instance (unused: everything was recorded by ``execute``).
        """
        from airflow.providers.openlineage.extractors import OperatorLineage

        self._complete_lineage()
        return OperatorLineage(
            inputs=[_to_dataset(ref) for ref in self._lineage_inputs],
            outputs=[_to_dataset(ref) for ref in self._lineage_outputs],
        )


def _to_dataset(ref: DatasetRef) -> Dataset:
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=ref.namespace, name=ref.name)
