"""The audit config model assembled from the registered adapters and auditors.

Plugins are validated, documented in ``auditkit schema`` and completed by editors exactly
like the built-ins. The model is cached per set of registered classes, so
``registry.clear()`` after installing a plugin yields a fresh one.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field, create_model

from auditkit import registry
from auditkit.config import AuditConfigBase, StrictModel


def config_model() -> type[AuditConfigBase]:
    """The strict config model for the adapters and auditors registered now."""
    return _assemble(tuple(registry.adapters().items()), tuple(registry.auditors().items()))


@cache
def _assemble(adapters: tuple[tuple[str, type], ...], auditors: tuple[tuple[str, type], ...]) -> type[AuditConfigBase]:
    model_types = tuple(cls.Config for _, cls in adapters)
    model_field: Any = (
        Annotated[Union[model_types], Field(discriminator="adapter")]  # noqa: UP007
        if len(model_types) > 1
        else model_types[0]
    )
    auditor_fields: dict[str, Any] = {
        name: (cls.Settings | None, Field(None, description=(cls.__doc__ or "").strip().splitlines()[0]))
        for name, cls in auditors
    }
    auditors_model = create_model(
        "AuditorsConfig", __base__=StrictModel, __doc__="Auditors to run, in this order.", **auditor_fields
    )
    return create_model(
        "AuditConfig",
        __base__=AuditConfigBase,
        __doc__="An auditkit audit.",
        model=(model_field, Field(description="The model under audit.")),
        auditors=(auditors_model, Field(default_factory=auditors_model)),
    )


def json_schema() -> dict[str, Any]:
    schema = config_model().model_json_schema()
    for hidden in ("config_path", "auditor_order"):
        schema.get("properties", {}).pop(hidden, None)
    gate = schema.get("$defs", {}).get("GateConfig")
    if gate is not None:  # a gate spells out metric, op and threshold, or names a rule and a slice
        gate.pop("required", None)
        gate["anyOf"] = [{"required": ["metric", "op", "threshold"]}, {"required": ["rule", "slice"]}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "auditkit audit config"
    return schema
