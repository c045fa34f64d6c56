"""What the connection's Test button says: one whoami call, and every way it can fail, as ``(ok, message)``.

:meth:`BctrlHook.test_connection <airflow_provider_bctrl.hooks.bctrl.BctrlHook.test_connection>` calls
:func:`check_connection`; the messages are listed in ``docs/connection.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from airflow_provider_bctrl.exceptions import (
    BctrlApiError,
    BctrlAuthError,
    BctrlConnectionConfigError,
    BctrlRateLimitError,
    BctrlServerError,
    BctrlTransportError,
    BctrlUnexpectedResponseError,
    never_sent,
)

if TYPE_CHECKING:
    from airflow_provider_bctrl.hooks.bctrl import BctrlHook

__all__ = ["check_connection"]


def check_connection(hook: BctrlHook) -> tuple[bool, str]:
    """Call whoami once, never retried; say whether the key, its rights, the host or the server failed."""
    try:
        settings = hook.settings
        who = hook.whoami(max_retries=0)
    except BctrlConnectionConfigError as exc:
        return False, str(exc)
    except BctrlAuthError as exc:
        # The API's own words and the request id; its hint is written for raw API users.
        said = f"{exc.error or 'no message'} (request id {exc.request_id or 'unknown'})"
        if exc.status == 403:
            return (
                False,
                f"The API key is not allowed to use this API (403 {exc.code or 'forbidden'}): {said}",
            )
        return (
            False,
            f"BCTRL rejected the API key (401 {exc.code or 'unauthorized'}): check the API key field. {said}",
        )
    except BctrlTransportError as exc:
        cause = exc.__cause__
        if isinstance(cause, requests.exceptions.Timeout):
            return False, f"Timed out: {exc}"
        if isinstance(cause, requests.exceptions.SSLError) and never_sent(cause):
            return False, f"TLS handshake failed: {exc}"
        if cause is None or never_sent(cause):
            return False, f"Host unreachable: {exc}"
        # The TCP connection was made, so "unreachable" would send the user to the wrong place:
        # something answered that is not an HTTP(S) API, or the connection broke mid-answer.
        return False, f"Host reached, but it gave no valid HTTP answer: {exc}"
    except BctrlUnexpectedResponseError as exc:
        return False, f"Not a BCTRL API: {exc}"
    except (BctrlRateLimitError, BctrlServerError) as exc:
        # 429 or 5xx, with or without BCTRL's error object: a gateway in front of an outage answers
        # in its own format, and the base URL may well be right.
        return False, f"BCTRL is unavailable right now, try again later: {exc}"
    except BctrlApiError as exc:
        if exc.code is None:
            return False, f"Not a BCTRL API: {exc}"
        return False, str(exc)
    if not (who.organization_id or who.default_space_id):
        return False, (
            f"Not a BCTRL API: {settings.base_url} answered whoami without an organisation or default "
            "space. Check the API base URL."
        )
    message = (
        f"Connected to BCTRL at {settings.base_url}: organisation {who.organization_id or '?'}, "
        f"default space {who.default_space_id or '(none)'}"
        + (f", subaccount {who.subaccount_id}" if who.subaccount_id else "")
        + "."
    )
    # `airflow connections test` prints only "Connection success!"; with -v it shows this log line.
    hook.log.info("%s", message)
    return True, message
