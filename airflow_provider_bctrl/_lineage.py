"""Hook-level lineage: what a hook call read and wrote, told to Airflow's hook lineage collector.

A ``@task`` that calls the hook has no operator lineage of its own; the OpenLineage provider then reads
the collector (as it does for the S3 hook's ``load_file`` or the GCS hook's ``upload``). The collector
comes from ``airflow.providers.common.compat.lineage.hook``, which gives every supported Airflow line
(2.11 names its methods after datasets, 3.x after assets) the same ``add_input_asset`` /
``add_output_asset``.

On Airflow 2.11 a ``bctrl://`` URI cannot be a Dataset (the provider refuses it there, see
``docs/installation.md``), so the hook reports only the other end of a transfer: the local file or
the object it read or wrote.

Lineage is a side channel: nothing here may fail a transfer that worked, so every failure is logged and
swallowed. When no lineage reader is registered (the OpenLineage provider not installed or disabled),
Airflow hands out a collector that does nothing; then the hook skips the one lookup a stored file's
name may need. Naming: ``docs/lineage.md`` ("Hook-level lineage").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_bctrl.assets import asset_uri
from airflow_provider_bctrl.exceptions import BctrlInputError

if TYPE_CHECKING:
    from airflow_provider_bctrl.models import StoredFile

__all__ = [
    "LineageCollector",
    "LocalFile",
    "StoredFileRef",
    "hook_lineage_collector",
    "report_lineage",
    "space_file",
]


class LineageCollector(Protocol):
    """The part of Airflow's ``HookLineageCollector`` the hook uses (as common-compat presents it)."""

    def add_input_asset(self, context: Any, *args: Any, **kwargs: Any) -> None:
        """Record an asset the hook read."""

    def add_output_asset(self, context: Any, *args: Any, **kwargs: Any) -> None:
        """Record an asset the hook wrote."""


@dataclass(frozen=True)
class LocalFile:
    """A file on the worker: reported through the ``file`` asset factory, as the official hooks do.

    The path is made absolute (symlinks resolved) when it is reported, so calls without a lineage
    reader skip the system calls.
    """

    path: Path


@dataclass(frozen=True)
class StoredFileRef:
    """A durable BCTRL file known by id only: its ``bctrl://<space>/<path>`` URI needs a lookup."""

    file_id: str


#: What a transfer names as an input or output: an asset URI, a local file, or a stored file by id.
LineageItem = str | LocalFile | StoredFileRef


def hook_lineage_collector(log: logging.Logger | Any) -> LineageCollector | None:
    """Airflow's hook lineage collector, or ``None`` when nobody reads it (or it cannot be had)."""
    try:
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
    except Exception as exc:  # an Airflow without it, or a plugin that failed to load
        log.debug("No hook lineage collector: %s", exc)
        return None
    # Airflow 2.11 and 3.x both hand out a NoOpCollector when no lineage reader is registered.
    if type(collector).__name__ == "NoOpCollector":
        return None
    return collector


def space_file(space_id: str, stored: StoredFile) -> LineageItem:
    """A stored file's asset URI from its space and path; by id (looked up later) when they make none."""
    try:
        return asset_uri(space_id, stored.path) if stored.path else StoredFileRef(stored.id)
    except BctrlInputError:
        return StoredFileRef(stored.id)


def report_lineage(
    context: Any,
    *,
    inputs: Sequence[LineageItem],
    outputs: Sequence[LineageItem],
    get_file: Callable[[str], StoredFile],
    log: logging.Logger | Any,
) -> None:
    """Tell the collector (if anyone reads it) what a finished transfer read and wrote; never raises.

    :param context: the hook, which Airflow records as the lineage's context.
    :param get_file: the hook's ``GET /v1/files/{id}``, which names a stored file's space and path.
    """
    collector = hook_lineage_collector(log)
    if collector is None:
        return
    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        inputs, outputs = _without_bctrl(inputs), _without_bctrl(outputs)
    for items, add in ((inputs, collector.add_input_asset), (outputs, collector.add_output_asset)):
        for item in items:
            try:
                _add(context, add, item, get_file)
            except Exception as exc:
                log.warning("Could not report lineage for %s: %s", item, exc)


def _without_bctrl(items: Sequence[LineageItem]) -> list[LineageItem]:
    return [
        item
        for item in items
        if not isinstance(item, StoredFileRef) and not (isinstance(item, str) and item.startswith("bctrl://"))
    ]


def _add(
    context: Any, add: Callable[..., None], item: LineageItem, get_file: Callable[[str], StoredFile]
) -> None:
    if isinstance(item, LocalFile):
        add(context=context, scheme="file", asset_kwargs={"path": str(item.path.resolve())})
        return
    uri = _stored_uri(get_file(item.file_id)) if isinstance(item, StoredFileRef) else item
    if uri:
        add(context=context, uri=uri)


def _stored_uri(stored: StoredFile) -> str | None:
    """The ``bctrl://<space>/<path>`` URI of a stored file, or ``None`` when its answer names no place."""
    return asset_uri(stored.space_id, stored.path) if stored.space_id and stored.path else None
