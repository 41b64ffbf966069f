"""One HTML section per auditor: tables and plotly figures built from its result.

A section builder is registered for a result type and found through the result's class
hierarchy, so a subclass of a result keeps its section and a plugin auditor can ship its own
(register it in a module named in the ``auditkit.sections`` entry-point group). A result
without one gets a generic section that lists its summary. Builders format; they compute nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import plotly.graph_objects as go

from auditkit.errors import AuditError
from auditkit.results import AuditorResult, GateResult

SECTION_GROUP = "auditkit.sections"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    collapsed: str = ""  # when set, the table is folded under this one-line summary (an HTML <details>)


@dataclass
class Heatmap:
    """One example's text as pieces: (text, colour as rgba or None, hover text)."""

    label: str
    pieces: list[tuple[str, str | None, str]]


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)  # plotly figure JSON
    notes: list[str] = field(default_factory=list)
    heatmaps: list[Heatmap] = field(default_factory=list)


SectionBuilder = Callable[[str, AuditorResult, list[GateResult]], Section]
BUILDERS: dict[type[AuditorResult], SectionBuilder] = {}
_plugins_loaded = False


def section_builder(result_type: type[AuditorResult]) -> Callable[[SectionBuilder], SectionBuilder]:
    """Register the decorated function as the section of ``result_type`` (and its subclasses)."""

    def register(fn: SectionBuilder) -> SectionBuilder:
        BUILDERS[result_type] = fn
        return fn

    return register


def builder_for(result_type: type) -> SectionBuilder:
    """The builder registered for the nearest class in ``result_type``'s hierarchy, else the generic one."""
    _load_plugins()
    return next((BUILDERS[c] for c in result_type.__mro__ if c in BUILDERS), generic_section)


def build_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    """The section of auditor ``name``'s result; ``gates`` are the gates on its metrics."""
    mine = [g for g in gates if g.id.startswith(f"{name}.")]
    return builder_for(type(result))(name, result, mine)


def _load_plugins() -> None:
    """Import the modules in the ``auditkit.sections`` entry-point group once; importing registers them."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=SECTION_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin is the user's to fix: say which one
            raise AuditError(f"plugin '{ep.name}' in entry-point group {SECTION_GROUP} failed to load: {exc}") from exc


def figure_json(fig: go.Figure) -> dict[str, Any]:
    fig.update_layout(template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 45}, height=340)
    return json.loads(fig.to_json())


def generic_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    summary = result.summary()
    rows = [[key, json.dumps(value, ensure_ascii=False)[:300]] for key, value in summary.items()]
    return Section(key=name, title=name, tables=[Table(["key", "value"], rows)])
