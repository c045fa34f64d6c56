"""Turning an Airflow connection (and the hook's own arguments) into checked, immutable settings.

Every numeric and URL setting is parsed here, once, before anything is sent: a value that is not a
finite number in its range, or a base URL that would not reach the host it names, raises
:class:`~airflow_provider_bctrl.exceptions.BctrlConnectionConfigError` naming the field.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_bctrl import CONN_TYPE, DEFAULT_BASE_URL
from airflow_provider_bctrl._validation import check_id
from airflow_provider_bctrl.exceptions import BctrlConnectionConfigError, BctrlError, BctrlInputError

__all__ = [
    "BctrlConnectionSettings",
    "HookArguments",
    "check_hook_argument",
    "connection_settings",
    "load_settings",
    "mask",
    "origin",
    "redact",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RETRY_WAIT = 60.0
DEFAULT_BACKOFF_BASE = 0.5


@dataclass(frozen=True)
class _Number:
    """One numeric setting: its default, and the ranges allowed from the connection and from code."""

    key: str
    default: float
    integer: bool
    #: The connection form's limits (``CONN_FIELDS``); ``None``: not a connection field.
    extra_range: tuple[float, float] | None
    #: A hook argument may go finer (sub-second timeouts are useful in tests), never unbounded.
    argument_range: tuple[float, float]
    #: The argument must be above the range's low end, not at it (a timeout of 0 is no timeout).
    above_low: bool = False


_NUMBERS = (
    _Number("timeout", DEFAULT_TIMEOUT, False, (1, 3600), (0, 86400), above_low=True),
    _Number("max_retries", DEFAULT_MAX_RETRIES, True, (0, 20), (0, 100)),
    _Number("max_retry_wait", DEFAULT_MAX_RETRY_WAIT, False, (1, 3600), (0, 86400)),
    _Number("backoff_base", DEFAULT_BACKOFF_BASE, False, None, (0, 3600)),
)
_NUMBER_SPECS = {spec.key: spec for spec in _NUMBERS}


@dataclass(frozen=True)
class HookArguments:
    """The settings a hook's constructor may override (``None``: take the connection's, else the default)."""

    timeout: float | None = None
    max_retries: int | None = None
    max_retry_wait: float | None = None
    backoff_base: float | None = None


@dataclass(frozen=True)
class BctrlConnectionSettings:
    """What the hook uses from the Airflow connection, parsed and checked.

    The API key is kept out of ``repr`` so the settings can be logged or shown safely.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    space_id: str | None
    subaccount_id: str | None
    connect_timeout: float
    read_timeout: float
    max_retries: int
    max_retry_wait: float
    allow_insecure_http: bool
    backoff_base: float = DEFAULT_BACKOFF_BASE

    @property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` timeout pair given to requests."""
        return (self.connect_timeout, self.read_timeout)

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port of the API: the only place the key is ever sent."""
        return origin(self.base_url)

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return redact(text, self.api_key)


def redact(text: str, key: str | None) -> str:
    """``text`` with every occurrence of ``key`` replaced by ``***``."""
    return text.replace(key, "***") if key and key in text else text


def origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of ``url`` (the default port filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def is_loopback(hostname: str) -> bool:
    """``localhost`` or a loopback IP literal; other names are not trusted unresolved."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(
    get_connection: Callable[[str], Any], conn_id: Any, arguments: HookArguments
) -> BctrlConnectionSettings:
    """Look the connection up with ``get_connection`` (the hook's) and check it into settings."""
    if not isinstance(conn_id, str) or not conn_id.strip():
        raise BctrlConnectionConfigError("bctrl_conn_id is empty: name the Airflow connection to use.")
    try:
        conn = get_connection(conn_id)
    except _connection_not_found():
        raise BctrlConnectionConfigError(
            f"The Airflow connection {conn_id!r} does not exist. Create a connection of type "
            f"'{CONN_TYPE}' with that id, or set AIRFLOW_CONN_{conn_id.upper()}."
        ) from None
    if conn.password:
        mask(conn.password.strip())
    return connection_settings(conn, conn_id, arguments)


def _connection_not_found() -> tuple[type[Exception], ...]:
    """The exception types ``get_connection`` raises for a missing connection (Airflow 2.11 to 3.x).

    The task SDK has its own class on 3.x, while code paths outside a task still raise the core one.
    """
    from airflow.exceptions import AirflowNotFoundException as CoreNotFound
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    return (AirflowNotFoundException, CoreNotFound)


def mask(secret: str) -> None:
    """Register ``secret`` with Airflow's log masker: the API key, a run's connect URL."""
    # Airflow already masks connection passwords it hands out; this also covers keys set another way.
    from airflow.providers.common.compat.sdk import mask_secret

    from airflow_provider_bctrl._masking import guard_mask_secret_requests

    guard_mask_secret_requests()  # Airflow 3.0's dag.test() would log the value before masking it
    mask_secret(secret)


def connection_settings(conn: Any, conn_id: str, arguments: HookArguments) -> BctrlConnectionSettings:
    """Check an Airflow ``Connection`` of type ``bctrl`` and return its settings.

    :param conn: the connection (password: API key; host/port: base URL; extra: the form's fields).
    :param conn_id: its id, for messages.
    :param arguments: the hook's own overrides, which win over the connection's extras.
    """
    api_key = (conn.password or "").strip()
    if not api_key:
        raise BctrlConnectionConfigError(
            f"Connection {conn_id!r} has no API key: put your BCTRL API key (bctrl_...) in the "
            "connection's API key (password) field."
        )
    if not (api_key.isascii() and api_key.isprintable()) or any(ch.isspace() for ch in api_key):
        # Caught here, never echoed: requests would fail later with the key in its message.
        raise BctrlConnectionConfigError(
            f"Connection {conn_id!r}: the API key contains characters that cannot be sent in an HTTP "
            "header (spaces, line breaks or non-ASCII characters, often from copy and paste); "
            "paste the key again."
        )
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    insecure = _extra(extra, "allow_insecure_http")
    allow_insecure = False if insecure is None else _as_bool(insecure, "allow_insecure_http", conn_id)
    base_url = _base_url(conn.host, conn.port, conn_id, allow_insecure_http=allow_insecure)
    numbers = {spec.key: _number(spec, extra, arguments, conn_id) for spec in _NUMBERS}
    return BctrlConnectionSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        space_id=_extra_id(extra, "space_id", conn_id),
        subaccount_id=_extra_id(extra, "subaccount_id", conn_id),
        connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, numbers["timeout"]),
        read_timeout=numbers["timeout"],
        max_retries=int(numbers["max_retries"]),
        max_retry_wait=numbers["max_retry_wait"],
        allow_insecure_http=allow_insecure,
        backoff_base=numbers["backoff_base"],
    )


def _extra(extra: Mapping[str, Any], key: str) -> Any:
    value = extra.get(key)
    return None if value == "" else value


def _number(spec: _Number, extra: Mapping[str, Any], arguments: HookArguments, conn_id: str) -> float:
    override = getattr(arguments, spec.key)
    if override is not None:
        return check_hook_argument(
            spec.key, override, f"Connection {conn_id!r}: the hook argument {spec.key!r}"
        )
    if spec.extra_range is not None and _extra(extra, spec.key) is not None:
        where = f"Connection {conn_id!r}: extra field {spec.key!r}"
        return _checked_number(spec, extra[spec.key], where, spec.extra_range, above_low=False)
    return spec.default


def check_hook_argument(
    key: str, value: Any, where: str, error: type[BctrlError] = BctrlConnectionConfigError
) -> float:
    """A hook argument (``timeout``, ``max_retries``, ...) checked against its range; whole for counts.

    The one check of these numbers, whether they come from the hook's constructor or from an
    operator's ``hook_params``; ``where`` names the value in the message, ``error`` is raised.
    """
    spec = _NUMBER_SPECS[key]
    return _checked_number(spec, value, where, spec.argument_range, above_low=spec.above_low, error=error)


def _checked_number(
    spec: _Number,
    value: Any,
    where: str,
    limits: tuple[float, float],
    *,
    above_low: bool,
    error: type[BctrlError] = BctrlConnectionConfigError,
) -> float:
    low, high = limits
    kind = "a whole number" if spec.integer else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{where} must be {kind}, got {value!r}.") from None
    if not math.isfinite(number):
        raise error(f"{where} must be a finite number, got {value!r}.")
    if spec.integer and number != int(number):
        raise error(f"{where} must be {kind}, got {value!r}.")
    if above_low and number <= low:
        raise error(f"{where} must be greater than {low:g}, got {number:g}.")
    if number < low:
        raise error(f"{where} must be at least {low:g}, got {number:g}.")
    if number > high:
        raise error(f"{where} must be at most {high:g}, got {number:g}.")
    return float(int(number)) if spec.integer else number


def _extra_id(extra: Mapping[str, Any], key: str, conn_id: str) -> str | None:
    value = _extra(extra, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BctrlConnectionConfigError(
            f"Connection {conn_id!r}: extra field {key!r} must be a string id, got {type(value).__name__} "
            f"{value!r:.60}."
        )
    try:
        return check_id(str(value).strip(), f"Connection {conn_id!r}: extra field {key!r}")
    except BctrlInputError as exc:
        raise BctrlConnectionConfigError(str(exc)) from None


def _as_bool(value: Any, key: str, conn_id: str) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise BctrlConnectionConfigError(f"Connection {conn_id!r}: extra field {key!r} must be true or false.")


#: "http:/host" or "https:host": a scheme whose "//" is missing would otherwise read as a host name.
#: A host name as sent (IDNA already applied); an IP literal in brackets is checked by requests.
_HOST_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")
_BROKEN_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?!//)(?!\d+(/|$))")


def _base_url(host: str | None, port: Any, conn_id: str, *, allow_insecure_http: bool) -> str:
    raw = (host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    where = f"Connection {conn_id!r}: the API base URL"
    if _BROKEN_SCHEME.match(raw):
        raise BctrlConnectionConfigError(
            f"{where} {raw.split(':', 1)[0]!r}:... is malformed: write it as https://host[:port][/path]."
        )
    if "://" not in raw:
        raw = f"https://{raw}"
    try:
        parts = urlsplit(raw)
        url_port = parts.port
    except ValueError as exc:
        raise BctrlConnectionConfigError(f"{where} is not a valid URL ({exc}).") from None
    shown = (
        raw
        if "@" not in parts.netloc
        else urlunsplit((parts.scheme, "***@" + parts.netloc.rsplit("@", 1)[1], parts.path, "", ""))
    )
    where = f"{where} {shown!r}"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BctrlConnectionConfigError(
            f"{where} must start with https:// (or http:// for a local emulator)."
        )
    if not parts.hostname:
        raise BctrlConnectionConfigError(f"{where} has no host name.")
    if url_port == 0:
        raise BctrlConnectionConfigError(f"{where} has an invalid port.")
    if parts.username or parts.password:
        raise BctrlConnectionConfigError(
            f"{where} must not contain credentials; put the API key in the key field."
        )
    if parts.query or parts.fragment:
        raise BctrlConnectionConfigError(f"{where} must not have a query string or fragment.")
    if scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise BctrlConnectionConfigError(
            f"{where} uses plain http:// to a host that is not on this machine, which would send the API "
            "key unencrypted. Use https://, or set the extra field allow_insecure_http to true if the "
            "network is private."
        )
    netloc = parts.netloc
    if url_port is None and port not in (None, ""):
        if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
            raise BctrlConnectionConfigError(
                f"Connection {conn_id!r}: the port field must be a whole number from 1 to 65535, got {port!r}."
            )
        netloc = f"{netloc}:{int(port)}"
    return _as_sent(urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", "")), where)


def _as_sent(url: str, where: str) -> str:
    """``url`` as requests will send it: an IDN host in its ASCII (IDNA) form, the path quoted.

    The key goes only to the base URL's origin, compared with each request's URL as sent; an
    unconverted ``bücher.example`` would never match ``xn--bcher-kva.example``, and a host that
    cannot be converted (a space, an invalid label) would only fail at request time.
    """
    import requests

    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise BctrlConnectionConfigError(f"{where} is not a valid URL ({exc}).") from None
    sent = prepared.url or url
    # requests < 2.33 percent-quotes a host it cannot send (a space, a NUL) instead of refusing it.
    host = urlsplit(sent).hostname or ""
    if ":" not in host and not _HOST_CHARACTERS.fullmatch(host):
        raise BctrlConnectionConfigError(
            f"{where} is not a valid URL (its host {host!r} holds a character a host name cannot)."
        )
    return sent.rstrip("/")
