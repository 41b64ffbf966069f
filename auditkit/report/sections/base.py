"""One HTML section per auditor: tables and plotly figures built from its result.

A section builder is looked up by auditor name; an auditor without one (a plugin, say)
gets a generic section that lists its summary. Builders format; they compute nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from auditkit.results import AuditorResult, GateResult


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


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
BUILDERS: dict[str, SectionBuilder] = {}
#: Builders keyed by result type win over the auditor's name: one auditor, several tasks.
TYPE_BUILDERS: dict[type, SectionBuilder] = {}


def section_builder(name: str) -> Callable[[SectionBuilder], SectionBuilder]:
    def register(fn: SectionBuilder) -> SectionBuilder:
        BUILDERS[name] = fn
        return fn

    return register


def build_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    """The section of auditor ``name``; ``gates`` are the gates on its metrics."""
    mine = [g for g in gates if g.id.startswith(f"{name}.")]
    for kind in type(result).__mro__:
        if kind in TYPE_BUILDERS:
            return TYPE_BUILDERS[kind](name, result, mine)
    return BUILDERS.get(name, generic_section)(name, result, mine)


def figure_json(fig: go.Figure) -> dict[str, Any]:
    fig.update_layout(template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 45}, height=340)
    return json.loads(fig.to_json())


def generic_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    summary = result.summary()
    rows = [[key, json.dumps(value, ensure_ascii=False)[:300]] for key, value in summary.items()]
    return Section(key=name, title=name, tables=[Table(["key", "value"], rows)])
