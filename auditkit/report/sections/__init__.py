"""One HTML section per auditor; the builders live in the submodules and register in :mod:`.base`."""

from auditkit.report.sections import (  # noqa: F401  (they register)
    explain,
    fairness,
    mitigation,
    ner,
    ner_privacy,
    performance,
    privacy,
)
from auditkit.report.sections.base import (
    BUILDERS,
    Heatmap,
    Section,
    Table,
    build_section,
    figure_json,
    generic_section,
    section_builder,
)

__all__ = [
    "BUILDERS",
    "Heatmap",
    "Section",
    "Table",
    "build_section",
    "figure_json",
    "generic_section",
    "section_builder",
]
