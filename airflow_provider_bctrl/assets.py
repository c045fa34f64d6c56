"""The ``bctrl://`` asset URI scheme: durable BCTRL space files as Airflow assets.

A BCTRL space file is the asset ``bctrl://<space_id>/<path>``: the netloc is the space id and the
path is the file's durable storage path (relative, without ``.``/``..`` segments), for example
``bctrl://3f1c.../reports/daily/2030-01-01.json``. The path may also name a *logical* dataset such as
``reports/daily`` that many stored files belong to; see ``docs/assets.md``.

Airflow finds the three functions here through ``asset-uris`` in
:func:`airflow_provider_bctrl.get_provider_info`:

- :func:`sanitize_uri` checks every ``Asset("bctrl://...")`` when it is created (at DAG parse time),
- :func:`create_asset` is the factory,
- :func:`convert_asset_to_openlineage` turns an asset into an OpenLineage dataset with the same
  naming the operators use (namespace ``bctrl://<space_id>``, name = the path).

Nothing heavy is imported here: the module is loaded whenever a DAG declares a ``bctrl://`` asset.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from airflow_provider_bctrl._validation import check_id, check_storage_path
from airflow_provider_bctrl.exceptions import BctrlInputError, BctrlUnsupportedError

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset
    from airflow.providers.common.compat.sdk import Asset

__all__ = [
    "SCHEME",
    "asset_uri",
    "convert_asset_to_openlineage",
    "create_asset",
    "openlineage_namespace",
    "parse_asset_uri",
    "refuse_on_airflow_2",
    "sanitize_uri",
]

#: The URI scheme this provider registers for assets.
SCHEME = "bctrl"

_EXAMPLE = "bctrl://<space_id>/reports/daily.json"


def openlineage_namespace(space_id: str) -> str:
    """The OpenLineage namespace of a space's files: ``bctrl://<space_id>``."""
    return f"{SCHEME}://{space_id}"


def asset_uri(space_id: str, path: str) -> str:
    """The asset URI of the durable file (or logical dataset) ``path`` in space ``space_id``.

    :param space_id: the BCTRL space id.
    :param path: the durable storage path, relative, without ``.``/``..`` segments.
    :raises BctrlInputError: when the space id or the path is not usable.
    """
    space = check_id(space_id, "space_id")
    relative = check_storage_path(path, "path").rstrip("/")
    if not relative:
        raise BctrlInputError(f"path {path!r} names no file or dataset.")
    return f"{SCHEME}://{space}/{relative}"


#: Why ``bctrl://`` assets stop at Airflow 2.11, in the words the refusal uses.
NEEDS_AIRFLOW_3 = (
    "BCTRL assets (bctrl:// URIs) need Airflow 3.0 or later; this is Airflow 2.11, where they would be "
    "Datasets without the asset-event features they rely on. The operators, the hook and XCom work on "
    "2.11: drop the bctrl:// outlets or inlets, or upgrade Airflow (docs/installation.md)."
)


def refuse_on_airflow_2(uri: SplitResult) -> SplitResult:
    """Airflow 2.11's ``dataset-uris`` handler for ``bctrl``: refuse the Dataset while the DAG is parsed.

    :raises BctrlUnsupportedError: always, naming what to do instead.
    """
    raise BctrlUnsupportedError(f"{uri.scheme}://{uri.netloc}{uri.path}: {NEEDS_AIRFLOW_3}")


def _invalid(uri: SplitResult, why: str) -> ValueError:
    text = f"{uri.scheme}://{uri.netloc}{uri.path}" + (f"?{uri.query}" if uri.query else "")
    return ValueError(f"Invalid BCTRL asset URI {text!r}: {why}. Expected the form {_EXAMPLE}.")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``bctrl://`` asset URI; Airflow calls this for every ``Asset("bctrl://...")``.

    Airflow has already lower-cased the scheme, dropped any user info and the fragment and removed
    trailing slashes. The URI must then have a space id as its netloc and a non-empty relative
    path without empty, ``.`` or ``..`` segments, and no query.

    :param uri: the split URI.
    :return: the URI unchanged (ids are case-sensitive, so nothing is normalised).
    :raises ValueError: saying what is wrong; Airflow refuses the asset with this message.
    """
    if not uri.netloc:
        raise _invalid(uri, "the space id (the part after 'bctrl://') is missing")
    if ":" in uri.netloc or "@" in uri.netloc:
        raise _invalid(uri, "the space id may not contain ':' or '@' (no port or user info)")
    try:
        check_id(uri.netloc, "space id")
    except BctrlInputError as exc:
        raise _invalid(uri, str(exc).rstrip(".")) from None
    if uri.query:
        raise _invalid(uri, "a query string is not part of a BCTRL path")
    if uri.fragment:
        raise _invalid(uri, "a fragment is not part of a BCTRL path")
    path = uri.path
    if not path or path == "/":
        raise _invalid(uri, "the storage path after the space id is missing")
    segments = path[1:].split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise _invalid(uri, "the path may not contain empty, '.' or '..' segments")
    return uri


def parse_asset_uri(uri: str) -> tuple[str, str]:
    """Split a ``bctrl://<space_id>/<path>`` URI into ``(space_id, path)``.

    :param uri: the asset URI, e.g. ``asset.uri`` or an asset event's ``uri``.
    :raises ValueError: when ``uri`` is not a valid BCTRL asset URI.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"{uri!r} is not a BCTRL asset URI; expected the form {_EXAMPLE}.")
    parts = sanitize_uri(parts._replace(scheme=SCHEME))
    return parts.netloc, parts.path[1:]


def create_asset(*, space_id: str, path: str, extra: dict[str, Any] | None = None) -> Asset:
    """Create the :class:`~airflow.sdk.Asset` for a durable file or logical dataset in a space.

    :param space_id: the BCTRL space id (the URI's netloc).
    :param path: the durable storage path, relative, e.g. ``"reports/daily"``.
    :param extra: the asset's own extra (static information about the asset, not per event).
    :raises BctrlInputError: when the space id or the path is not usable.
    """
    from airflow.providers.common.compat.sdk import Asset

    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS

    uri = asset_uri(space_id, path)
    if not AIRFLOW_V_3_0_PLUS:
        raise BctrlUnsupportedError(f"{uri}: {NEEDS_AIRFLOW_3}")
    return Asset(uri=uri, extra=extra)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> OpenLineageDataset:
    """Translate a ``bctrl://`` asset into an OpenLineage dataset.

    The namespace is ``bctrl://<space_id>`` and the name is the path, the same naming the operators
    use for the files they read and write (see ``docs/lineage.md``).

    :param asset: an asset with a ``bctrl://`` URI.
    :param lineage_context: unused; part of Airflow's converter signature.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

    space_id, path = parse_asset_uri(asset.uri)
    return OpenLineageDataset(namespace=openlineage_namespace(space_id), name=path)
