"""The connection form for Airflow lines that build it from the hook's classmethods (2.11, 3.0, 3.1).

Airflow 3.2+ reads the form from ``conn-fields`` / ``ui-field-behaviour`` in the provider info
(:data:`airflow_provider_bctrl.CONN_FIELDS`). Airflow 2.11's Flask UI and the 3.0/3.1 api-server call
``BctrlHook.get_connection_form_widgets()`` and ``get_ui_field_behaviour()`` instead; this module builds
their answers from the same :data:`~airflow_provider_bctrl.CONN_FIELDS`, so the two forms cannot drift.

The widgets are WTForms fields, the classes those UIs read: 2.11 renders them, and the 3.0/3.1 api-server
swaps WTForms' field classes for stand-ins while it reads the form (so ``wtforms`` must be importable
there: it is a dependency of this provider). Flask-AppBuilder's text widget is used where it is
installed (2.11); the 3.0/3.1 api-server ignores widgets. Nothing here is imported with the hook module.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_bctrl import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def connection_form_widgets() -> dict[str, Any]:
    """The extra fields of the BCTRL connection form, as WTForms fields (labels, defaults, ranges)."""
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import NumberRange, Optional

    def text_widget() -> Any:
        try:  # Flask-AppBuilder comes with Airflow 2.11's UI; the 3.0/3.1 api-server needs no widget
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        except ImportError:
            return None
        return BS3TextFieldWidget()

    widgets: dict[str, Any] = {}
    for name, field in CONN_FIELDS.items():
        schema = field["schema"]
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        label = field["label"]
        description = field.get("description", "")
        if "boolean" in kinds:
            widgets[name] = BooleanField(label, description=description, default=schema.get("default", False))
        elif "integer" in kinds:
            widgets[name] = IntegerField(
                label,
                description=description,
                widget=text_widget(),
                validators=[Optional(), NumberRange(min=schema.get("minimum"), max=schema.get("maximum"))],
                default=schema.get("default"),
            )
        else:
            widgets[name] = StringField(
                label, description=description, widget=text_widget(), validators=[Optional()]
            )
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden, relabelled and placeholder standard fields, in the hook-classmethod spelling."""
    return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}
