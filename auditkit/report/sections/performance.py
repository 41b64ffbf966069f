"""HTML section of the performance auditor."""

from __future__ import annotations

import plotly.graph_objects as go

from auditkit.report.sections.base import Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult


@section_builder("performance")
def performance_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
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
