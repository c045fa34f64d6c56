"""Apache Airflow provider for BCTRL cloud browser runtimes.

Importing this package is cheap on purpose: Airflow calls :func:`get_provider_info` in every
process that lists providers, and DAG files import the operators at every parse. Nothing here
imports ``requests``, the hook, or the emulator.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]

#: The connection type this provider registers, and the default connection id its hook uses.
CONN_TYPE = "bctrl"
DEFAULT_CONN_ID = "bctrl_default"

#: Default API base URL when the connection's host is empty.
DEFAULT_BASE_URL = "https://api.bctrl.ai"

#: Connection-form extra fields. The hook reads exactly these keys from ``Connection.extra``
#: (``tests/hooks/test_connection_settings.py`` keeps the two in step).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "space_id": {
        "label": "Default space id",
        "description": "Space that collected files are stored in when a task names none. "
        "Empty: the key's default space, looked up with whoami.",
        "schema": {"type": ["string", "null"]},
    },
    "subaccount_id": {
        "label": "Subaccount id",
        "description": "Act inside this subaccount (sent as the BCTRL-Subaccount-Id header). "
        "Only for organisation keys.",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "How long one request may wait for the server to answer (connect and read).",
        "schema": {"type": ["integer", "null"], "default": 60, "minimum": 1, "maximum": 3600},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Automatic retries of safe requests on rate limits and unavailable upstreams.",
        "schema": {"type": ["integer", "null"], "default": 3, "minimum": 0, "maximum": 20},
    },
    "max_retry_wait": {
        "label": "Max wait between retries (seconds)",
        "description": "Longest single wait before a retry, even when the server's Retry-After asks for more.",
        "schema": {"type": ["integer", "null"], "default": 60, "minimum": 1, "maximum": 3600},
    },
    "allow_insecure_http": {
        "label": "Allow plain http",
        "description": "Send the API key over unencrypted http:// to a non-loopback host. "
        "Leave off unless you know the network is private.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}

#: Standard fields hidden, relabelled and given placeholders in the connection form (provider-info spelling;
#: the hook's ``get_ui_field_behaviour()`` gives the same for Airflow 2.11-3.1).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "schema", "port"],
    "relabeling": {"host": "API base URL", "password": "API key"},
    "placeholders": {"host": DEFAULT_BASE_URL, "password": "bctrl_..."},
}


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow (the ``apache_airflow_provider`` entry point)."""
    from airflow_provider_bctrl.version_compat import AIRFLOW_V_3_0_PLUS

    info = _provider_info()
    if not AIRFLOW_V_3_0_PLUS:
        # Airflow 2.11 calls a Dataset URI handler at parse time: bctrl:// is refused there, clearly.
        info["dataset-uris"] = [
            {"schemes": ["bctrl"], "handler": "airflow_provider_bctrl.assets.refuse_on_airflow_2"}
        ]
    return info


def _provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-bctrl",
        "name": "BCTRL",
        "description": "Move files between Airflow pipelines and BCTRL cloud browser runtimes.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "BCTRL",
                "external-doc-url": "https://platform.bctrl.ai",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "BCTRL",
                "python-modules": ["airflow_provider_bctrl.hooks.bctrl"],
            }
        ],
        "operators": [
            {
                "integration-name": "BCTRL",
                "python-modules": [
                    "airflow_provider_bctrl.operators.runtime_files",
                    "airflow_provider_bctrl.operators.files",
                    "airflow_provider_bctrl.operators.runtimes",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "BCTRL",
                "python-modules": ["airflow_provider_bctrl.triggers.bctrl"],
            }
        ],
        # Asset("bctrl://<space_id>/<path>"): checked, built and mapped to OpenLineage here.
        "asset-uris": [
            {
                "schemes": ["bctrl"],
                "handler": "airflow_provider_bctrl.assets.sanitize_uri",
                "factory": "airflow_provider_bctrl.assets.create_asset",
                "to_openlineage_converter": "airflow_provider_bctrl.assets.convert_asset_to_openlineage",
            }
        ],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "airflow_provider_bctrl.hooks.bctrl.BctrlHook",
                "hook-name": "BCTRL",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
