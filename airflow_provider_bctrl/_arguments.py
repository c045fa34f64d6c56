"""The checked arguments of each file call, built once by whoever is called first: the operator or the hook.

An operator checks its rendered arguments into one of these before it creates the hook (so a bad
argument never costs a connection lookup) and hands it to the hook, which does not check again; a
direct hook call builds it inside the hook's public method. Each ``check`` raises
:class:`~airflow_provider_bctrl.exceptions.BctrlInputError` naming the first bad argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Union

from airflow_provider_bctrl._settings import check_hook_argument
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
from airflow_provider_bctrl.exceptions import BctrlInputError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

__all__ = [
    "HOOK_PARAM_KEYS",
    "CollectArguments",
    "DownloadArguments",
    "HookParams",
    "StageArguments",
    "UploadArguments",
    "check_hook_params",
    "check_hook_params_keys",
]

#: A local path, an object storage URI string, or an ``ObjectStoragePath``.
Location = Union[str, "os.PathLike[str]", "ObjectStoragePath"]


def _optional(value: Any, check: Any, argument: str) -> Any:
    return None if value is None else check(value, argument)


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _conn_id(value: str | None, argument: str) -> str | None:
    # A template such as "{{ params.storage_conn_id }}" renders to "" when unset: no connection.
    return check_id(value, argument) if value else None


@dataclass(frozen=True)
class UploadArguments:
    """``upload_file``'s arguments, checked. A local ``source`` is a readable regular file."""

    runtime_id: str
    source: Location
    name: str | None = None
    runtime_path: str | None = None
    destination_path: str | None = None
    metadata: dict[str, Any] | None = None
    source_conn_id: str | None = None
    #: Whether ``source`` is a local file, checked here (the hook then does not check it again).
    local_source: bool = False

    @classmethod
    def check(
        cls,
        runtime_id: Any,
        source: Any,
        *,
        name: Any = None,
        runtime_path: Any = None,
        destination_path: Any = None,
        metadata: Any = None,
        source_conn_id: Any = None,
    ) -> UploadArguments:
        """Check every argument; object storage sources are looked up later, by the hook."""
        runtime_id = check_id(runtime_id, "runtime_id")
        local = not (is_uri(source) or is_object_path(source))
        if local:
            source = check_local_file(source, "source")
            source_conn_id = None
        else:
            source_conn_id = _conn_id(source_conn_id, "source_conn_id")
        return cls(
            runtime_id=runtime_id,
            source=source,
            name=_optional(name, check_name, "name"),
            runtime_path=_optional(runtime_path, check_runtime_path, "runtime_path"),
            destination_path=_optional(destination_path, check_storage_path, "destination_path"),
            metadata=_optional(metadata, check_json_object, "metadata"),
            source_conn_id=source_conn_id,
            local_source=local,
        )


@dataclass(frozen=True)
class CollectArguments:
    """``collect_file``'s arguments, checked (``space_id`` ``None``: the default space)."""

    runtime_id: str
    path: str
    space_id: str | None = None
    storage_path: str | None = None
    name: str | None = None
    artifact: dict[str, Any] | None = None

    @classmethod
    def check(
        cls,
        runtime_id: Any,
        path: Any,
        *,
        space_id: Any = None,
        storage_path: Any = None,
        name: Any = None,
        artifact: Mapping[str, Any] | None = None,
    ) -> CollectArguments:
        """Check every argument."""
        return cls(
            runtime_id=check_id(runtime_id, "runtime_id"),
            path=check_runtime_source_path(path, "path"),
            space_id=_optional(space_id, check_id, "space_id"),
            storage_path=_optional(storage_path, check_storage_path, "storage_path"),
            name=_optional(name, check_name, "name"),
            artifact=_optional(artifact, check_artifact, "artifact"),
        )

    def json_body(self) -> dict[str, Any]:
        """The request body of ``POST .../files/collect`` (unset fields left out)."""
        return _without_none(
            {
                "path": self.path,
                "storagePath": self.storage_path,
                "name": self.name,
                "artifact": self.artifact,
            }
        )


@dataclass(frozen=True)
class StageArguments:
    """``stage_file``'s arguments, checked."""

    runtime_id: str
    file_id: str
    runtime_path: str | None = None
    name: str | None = None

    @classmethod
    def check(
        cls, runtime_id: Any, file_id: Any, *, runtime_path: Any = None, name: Any = None
    ) -> StageArguments:
        """Check every argument."""
        return cls(
            runtime_id=check_id(runtime_id, "runtime_id"),
            file_id=check_id(file_id, "file_id"),
            runtime_path=_optional(runtime_path, check_runtime_path, "runtime_path"),
            name=_optional(name, check_name, "name"),
        )

    def json_body(self) -> dict[str, Any]:
        """The request body of ``POST .../files/stage`` (unset fields left out)."""
        return _without_none({"fileId": self.file_id, "runtimePath": self.runtime_path, "name": self.name})


@dataclass(frozen=True)
class DownloadArguments:
    """``download_file``'s arguments, checked (where the bytes go is resolved by the hook)."""

    file_id: str
    destination: Location
    destination_conn_id: str | None = None

    @classmethod
    def check(cls, file_id: Any, destination: Any, *, destination_conn_id: Any = None) -> DownloadArguments:
        """Check every argument."""
        file_id = check_id(file_id, "file_id")
        is_local = not (is_uri(destination) or is_object_path(destination))
        if is_local and (not isinstance(destination, (str, os.PathLike)) or not os.fspath(destination)):
            raise BctrlInputError(
                "destination must be a local path, an ObjectStoragePath or a URI such as "
                f"s3://bucket/key, got {destination!r}."
            )
        return cls(
            file_id=file_id,
            destination=destination,
            destination_conn_id=_conn_id(destination_conn_id, "destination_conn_id"),
        )


class HookParams(TypedDict, total=False):
    """Per-task overrides of the connection's settings, passed to :class:`BctrlHook` (``hook_params``)."""

    #: Seconds one request may wait for the server (a number > 0); the connection's ``timeout`` extra.
    timeout: float
    #: Automatic retries of safe requests (a whole number >= 0); the connection's ``max_retries``.
    max_retries: int
    #: Longest single wait before a retry, in seconds (>= 0); the connection's ``max_retry_wait``.
    max_retry_wait: float


#: The keys ``hook_params`` accepts.
HOOK_PARAM_KEYS = ("max_retries", "max_retry_wait", "timeout")


def check_hook_params_keys(value: Any) -> None:
    """Refuse an unknown ``hook_params`` key early: at parse time when the mapping is plain.

    A value that is still a template or an ``XComArg`` is left to :func:`check_hook_params` at run time.
    """
    if not isinstance(value, Mapping):
        return
    unknown = sorted(str(key) for key in value if key not in HOOK_PARAM_KEYS)
    if unknown:
        raise BctrlInputError(
            f"hook_params has an unknown key {unknown[0]!r}; the keys are {', '.join(HOOK_PARAM_KEYS)}."
        )


def _hook_number(params: Mapping[str, Any], key: str) -> float | None:
    """``params[key]`` checked by the hook's own rule for that setting; ``None``/``""``/absent: ``None``."""
    raw = params.get(key)
    if raw is None or raw == "":  # rendered templates are strings; an unset one renders to ""
        return None
    return check_hook_argument(key, raw, f"hook_params[{key!r}]", BctrlInputError)


def check_hook_params(value: Any) -> HookParams:
    """The rendered ``hook_params``, checked and converted to numbers; raises naming the bad key.

    Rendered templates are strings, so ``"30"`` is accepted for a number; ``None`` or ``""`` for a key
    means "use the connection's setting". The ranges are the hook's own (:mod:`._settings`).

    :raises BctrlInputError: on a non-mapping, an unknown key or a value that is not a usable number.
    """
    if value is None or value == "":
        return HookParams()
    if not isinstance(value, Mapping):
        raise BctrlInputError(
            "hook_params must be a mapping such as {'timeout': 30, 'max_retries': 5}, "
            f"got {type(value).__name__}."
        )
    check_hook_params_keys(value)
    params = HookParams()
    if (timeout := _hook_number(value, "timeout")) is not None:
        params["timeout"] = timeout
    if (retries := _hook_number(value, "max_retries")) is not None:
        params["max_retries"] = int(retries)
    if (wait := _hook_number(value, "max_retry_wait")) is not None:
        params["max_retry_wait"] = wait
    return params
