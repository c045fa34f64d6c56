"""One attempt of an API request: the pooled session, sending, and turning the answer into a model or error.

Everything the server sends enters the provider here, and here the API key is redacted from it: a
server that echoes the key cannot put it into a result, an XCom, an exception or a log.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import requests
from requests.auth import AuthBase
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError

from airflow_provider_bctrl import __version__
from airflow_provider_bctrl._deadlines import AnswerTooSlow, DeadlineAdapter, read_body
from airflow_provider_bctrl._multipart import FileChangedError, StreamingMultipartBody
from airflow_provider_bctrl._settings import BctrlConnectionSettings, origin
from airflow_provider_bctrl.exceptions import (
    UNCERTAIN_SUFFIX,
    BctrlApiError,
    BctrlInputError,
    BctrlTransportError,
    BctrlUncertainTransportError,
    BctrlUnexpectedResponseError,
    error_from_response,
    error_from_transport,
    without_frames,
)

__all__ = [
    "MAX_JSON_BYTES",
    "body_pieces",
    "json_object",
    "new_session",
    "parse_model",
    "quiet_cause",
    "redacted_cause",
    "send",
    "too_slow",
    "transport_error",
]

_Model = TypeVar("_Model")

#: Enough pooled connections for many threads sharing one hook without urllib3 discarding them.
POOL_SIZE = 32
#: Redirects a GET follows (requests' default, 30, made a redirect loop cost a hundred requests).
MAX_REDIRECTS = 10
#: The largest JSON answer read; a larger one is refused while it is read (the API's answers are small).
MAX_JSON_BYTES = 16 * 1024 * 1024


class _BearerAuth(AuthBase):
    """Adds the API key to requests for the API's own origin, and to nothing else."""

    def __init__(self, api_key: str, api_origin: tuple[str, str, int]) -> None:
        self._api_key = api_key
        self._origin = api_origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.url and origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __repr__(self) -> str:
        return "<BearerAuth ***>"


def new_session(settings: BctrlConnectionSettings) -> requests.Session:
    """A session with the key (for the API's origin only), the User-Agent, the subaccount and a pool."""
    session = requests.Session()
    adapter = DeadlineAdapter(pool_connections=2, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.max_redirects = MAX_REDIRECTS
    session.auth = _BearerAuth(settings.api_key, settings.origin)
    session.headers["User-Agent"] = f"airflow-provider-bctrl/{__version__}"
    session.headers["Accept"] = "application/json"
    if settings.subaccount_id:
        session.headers["BCTRL-Subaccount-Id"] = settings.subaccount_id
    return session


def send(
    session: requests.Session,
    settings: BctrlConnectionSettings,
    method: str,
    path: str,
    *,
    operation: str,
    json_body: Mapping[str, Any] | None = None,
    body: StreamingMultipartBody | None = None,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    stream: bool = False,
    idempotent: bool | None = None,
) -> requests.Response:
    """Send one attempt; return a response with a status below 300, or raise the mapped error.

    Without ``stream`` the answer is read here, at most :data:`MAX_JSON_BYTES`. The error's
    ``retryable`` tells :func:`~airflow_provider_bctrl._retry.call_with_retries` what to do.

    :param idempotent: whether a repeat cannot act twice (default: GET/HEAD only). A POST that carries
        an ``Idempotency-Key`` is, so its failures are retryable like a read's.
    """
    is_read = method.upper() in ("GET", "HEAD")
    if idempotent is None:
        idempotent = is_read
    request_headers = dict(headers or {})
    if body is not None:
        request_headers["Content-Type"] = body.content_type
    try:
        response = session.request(
            method,
            settings.base_url + path,
            params=params,
            json=json_body,
            data=body,
            headers=request_headers,
            timeout=settings.timeout,
            allow_redirects=is_read,
            stream=True,
        )
        if response.status_code >= 300 or not stream:
            _read_capped(response, operation, settings)
    except AnswerTooSlow as exc:
        raise too_slow(exc, operation, settings, idempotent=idempotent) from quiet_cause(exc, settings)
    except requests.RequestException as exc:
        changed = _cause_of_type(exc, FileChangedError)
        if changed is not None:
            # The local file changed mid-send; the body was cut short, so the server cannot have
            # stored it. Retrying would race the writer again: say what happened.
            raise BctrlInputError(
                f"{changed} (during {operation}). The upload was abandoned and nothing was stored; "
                "upload the file once whatever writes it has finished."
            ) from quiet_cause(exc, settings)
        raise transport_error(exc, operation, settings, idempotent=idempotent) from quiet_cause(exc, settings)
    finally:
        if body is not None:
            body.close()
    if response.status_code < 300:
        return response
    response.close()
    error = error_from_response(
        response.status_code,
        parse_json(response, settings),
        headers=response.headers,
        text=response.text if response.content else "",
        operation=operation,
        idempotent=idempotent,
    )
    if response.status_code in (401, 403):
        # The server's hint speaks of headers; a DAG author fixes an Airflow connection.
        field = "API key (password) field" if response.status_code == 401 else "API key's permissions"
        error.args = (f"{error.message} Check the {field} of the Airflow connection {settings.conn_id!r}.",)
    raise redacted_error(error, settings)


def transport_error(
    exc: requests.RequestException, operation: str, settings: BctrlConnectionSettings, *, idempotent: bool
) -> BctrlApiError:
    """The typed, redacted error for a request that got no (complete) answer."""
    error = error_from_transport(
        exc,
        operation,
        idempotent=idempotent,
        base_url=settings.base_url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    return redacted_error(error, settings)


def _read_capped(response: requests.Response, operation: str, settings: BctrlConnectionSettings) -> None:
    """Read a streamed answer into ``response.content``, refusing one over :data:`MAX_JSON_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    for pieces in body_pieces(response, settings, download=False):
        chunks += pieces
        size += sum(map(len, pieces))
        if size > MAX_JSON_BYTES:
            break
    if size > MAX_JSON_BYTES:
        response.close()
        raise BctrlUnexpectedResponseError(
            f"BCTRL API {response.status_code} during {operation}: the answer is larger than "
            f"{MAX_JSON_BYTES // (1024 * 1024)} MiB, far more than any BCTRL answer; is the connection's "
            f"API base URL ({settings.base_url}) a BCTRL API?",
            status=response.status_code,
        )
    response._content = b"".join(chunks)


def body_pieces(
    response: requests.Response, settings: BctrlConnectionSettings, *, download: bool
) -> Iterator[list[bytes]]:
    """The body as it arrives, in lists of pieces, within the deadlines of :mod:`~airflow_provider_bctrl._deadlines`.

    urllib3's errors become requests' (as ``iter_content`` does); :class:`AnswerTooSlow` passes.
    """
    try:
        yield from read_body(response.raw, settings.read_timeout, download=download)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from exc
    except Urllib3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


def too_slow(
    exc: AnswerTooSlow, operation: str, settings: BctrlConnectionSettings, *, idempotent: bool
) -> BctrlApiError:
    """The error for a server that dripped its answer: a GET may retry; a POST's outcome is uncertain."""
    message = f"BCTRL at {settings.base_url} {exc} ({operation})."
    if idempotent:
        return BctrlTransportError(message, retryable=True)
    return BctrlUncertainTransportError(message + UNCERTAIN_SUFFIX)


def parse_json(response: requests.Response, settings: BctrlConnectionSettings) -> Any:
    """The answer's JSON with the API key redacted from every string, or ``None`` if it is not JSON."""
    if "json" not in response.headers.get("Content-Type", "").lower():
        return None
    try:
        return _redact_tree(json.loads(response.content), settings.api_key)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any API answer
        return None


def json_object(
    response: requests.Response, operation: str, settings: BctrlConnectionSettings
) -> dict[str, Any]:
    """The answer as a (redacted) JSON object, or :class:`BctrlUnexpectedResponseError`."""
    payload = parse_json(response, settings)
    if not isinstance(payload, dict):
        content_type = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise BctrlUnexpectedResponseError(
            f"BCTRL API {response.status_code} during {operation}: expected a JSON object, got "
            f"{content_type}. Is the connection's API base URL ({settings.base_url}) a BCTRL API?",
            status=response.status_code,
            request_id=_request_id(response, settings),
        )
    return payload


def parse_model(
    response: requests.Response,
    operation: str,
    settings: BctrlConnectionSettings,
    build: Callable[[dict[str, Any]], _Model],
) -> _Model:
    """The answer as the model ``build`` makes; :class:`BctrlUnexpectedResponseError` if it does not fit."""
    payload = json_object(response, operation, settings)
    try:
        return build(payload)
    except (KeyError, TypeError, AttributeError) as exc:
        problem = f"lacks the key {exc}" if isinstance(exc, KeyError) else f"is malformed: {exc}"
        request_id = _request_id(response, settings)
        raise BctrlUnexpectedResponseError(
            f"BCTRL API {response.status_code} during {operation}: the response {problem} "
            f"(request id {request_id}).",
            status=response.status_code,
            request_id=request_id,
        ) from None


def _request_id(response: requests.Response, settings: BctrlConnectionSettings) -> str | None:
    return settings.redact(response.headers.get("X-Request-Id") or "") or None


def redacted_error(error: BctrlApiError, settings: BctrlConnectionSettings) -> BctrlApiError:
    """``error`` with the key removed from its message and every string attribute (and so its pickle)."""
    key = settings.api_key
    error.args = tuple(_redact_tree(arg, key) for arg in error.args)
    for name, value in list(vars(error).items()):
        error.__dict__[name] = _redact_tree(value, key)
    return error


def quiet_cause(exc: BaseException, settings: BctrlConnectionSettings) -> BaseException:
    """The cause to chain under a typed error: redacted (:func:`redacted_cause`) and without frames
    (:func:`~airflow_provider_bctrl.exceptions.without_frames`)."""
    return without_frames(redacted_cause(exc, settings))


def redacted_cause(exc: BaseException, settings: BctrlConnectionSettings) -> BaseException:
    """``exc`` to chain under a typed error, or a stand-in of the same type if it carries the API key.

    A server can put the key where requests and urllib3 quote it in their own errors (an echoed status
    line, a chunk size, a header line), and a task log prints the whole chain. The stand-in keeps the
    type (callers branch on it) and the text, redacted.
    """
    key = settings.api_key
    text = "".join(traceback.format_exception(exc))
    if key not in text:
        return exc
    said = settings.redact(str(exc))
    try:
        stand_in = type(exc)(said)
    except Exception:  # a type whose constructor wants more than a message
        stand_in = requests.exceptions.ConnectionError(said)
    return stand_in


def _redact_tree(value: Any, key: str) -> Any:
    if isinstance(value, str):
        return value.replace(key, "***") if key in value else value
    if isinstance(value, dict):
        return {_redact_tree(k, key): _redact_tree(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(item, key) for item in value]
    return value


def _cause_of_type(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Find ``kind`` among an exception's args, causes and contexts (urllib3 wraps what a body raised)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        stack.extend([current.__cause__, current.__context__, *current.args])
        stack.append(getattr(current, "reason", None))
    return None
