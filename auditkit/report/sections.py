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

from auditkit.results import AuditorResult


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)  # plotly figure JSON
    notes: list[str] = field(default_factory=list)


SectionBuilder = Callable[[str, AuditorResult], Section]
BUILDERS: dict[str, SectionBuilder] = {}


def section_builder(name: str) -> Callable[[SectionBuilder], SectionBuilder]:
    def register(fn: SectionBuilder) -> SectionBuilder:
        BUILDERS[name] = fn
        return fn

    return register


def build_section(name: str, result: AuditorResult) -> Section:
    return BUILDERS.get(name, generic_section)(name, result)


def figure_json(fig: go.Figure) -> dict[str, Any]:
    fig.update_layout(template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 45}, height=340)
    return json.loads(fig.to_json())


def generic_section(name: str, result: AuditorResult) -> Section:
    summary = result.summary()
    rows = [[key, json.dumps(value, ensure_ascii=False)[:300]] for key, value in summary.items()]
    return Section(key=name, title=name, tables=[Table(["key", "value"], rows)])


@section_builder("performance")
def performance_section(name: str, result: AuditorResult) -> Section:
    s = result.summary()
    m = s["metrics"]
    rows = [
        [key, m.get(key), m.get(f"{key}_reason", "")]
        for key in (
            "n",
            "n_positive",
            "accuracy",
            "balanced_accuracy",
            "roc_auc",
            "precision",
            "recall",
            "f1",
            "expected_calibration_error",
            "n_truncated",
        )
    ]
    cm = s["confusion_matrix"]
    confusion = Table(
        ["", "predicted negative", "predicted positive"],
        [["actual negative", cm["tn"], cm["fp"]], ["actual positive", cm["fn"], cm["tp"]]],
        caption="Confusion matrix (positive = the favourable label)",
    )
    figures = []
    if s["roc_curve"]["fpr"]:
        roc = go.Figure(go.Scatter(x=s["roc_curve"]["fpr"], y=s["roc_curve"]["tpr"], mode="lines", name="model"))
        roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, name="chance"))
        roc.update_layout(title="ROC curve", xaxis_title="false positive rate", yaxis_title="true positive rate")
        figures.append(figure_json(roc))
    bins = [b for b in s["calibration"] if b["n"]]
    calibration = go.Figure(
        go.Scatter(
            x=[b["mean_score"] for b in bins],
            y=[b["positive_rate"] for b in bins],
            mode="lines+markers",
            text=[f"n={b['n']}" for b in bins],
            name="model",
        )
    )
    calibration.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, name="perfect"))
    calibration.update_layout(
        title="Reliability diagram", xaxis_title="mean score in bin", yaxis_title="observed positive rate"
    )
    figures.append(figure_json(calibration))
    notes = []
    if m.get("n_truncated"):
        notes.append(
            f"{m['n_truncated']} of {m['n']} texts were longer than the model's maximum length and were truncated."
        )
    return Section(
        key=name,
        title="Performance",
        intro="How well the model predicts on the held-out rows.",
        tables=[Table(["metric", "value", "note"], rows), confusion],
        figures=figures,
        notes=notes,
    )
