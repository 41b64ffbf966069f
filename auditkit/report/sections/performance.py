"""HTML section of the performance auditor."""

from __future__ import annotations

import plotly.graph_objects as go

from auditkit.auditors.performance import PerformanceResult
from auditkit.auditors.performance_multiclass import MulticlassPerformanceResult
from auditkit.report.format import interval
from auditkit.report.sections.base import Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult


@section_builder(PerformanceResult)
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
    rows += [[key, m[key], ""] for key in ("fpr", "selection_rate", "roc_auc_binning_error") if key in m]  # streamed
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
    if bins:
        figures.append(_reliability(bins))
    notes = []
    if m.get("roc_auc_binning_error") is not None:
        notes.append(
            f"ROC AUC and the ROC curve come from binned scores (a streamed audit); the exact AUC lies within "
            f"{m['roc_auc_binning_error']:.2g} of the value shown."
        )
    if m.get("expected_calibration_error_reason"):
        notes.append(f"Calibration: {m['expected_calibration_error_reason']}.")
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


def _reliability(bins: list[dict]) -> dict:
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
    return figure_json(calibration)


@section_builder(MulticlassPerformanceResult)
def multiclass_performance_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    """Overall metrics, a per-class table and the k x k confusion matrix of a multiclass run."""
    s = result.summary()
    m, ci = s["metrics"], s["ci"]
    overall = [
        [key, m.get(key), interval(ci.get(key)), m.get(f"{key}_reason", "")]
        for key in (
            "accuracy",
            "balanced_accuracy",
            "macro_f1",
            "macro_precision",
            "macro_recall",
            "micro_f1",
            "macro_roc_auc",
        )
    ]
    overall = [["n", m["n"], "", ""], *overall]
    per_class_rows = []
    for cls, v in s["per_class"].items():
        reasons = "; ".join(
            f"{k}: {v[f'{k}_reason']}" for k in ("precision", "recall", "f1", "roc_auc") if f"{k}_reason" in v
        )
        per_class_rows.append(
            [
                cls,
                v["support"],
                v["precision"],
                interval(v["ci"].get("precision")),
                v["recall"],
                interval(v["ci"].get("recall")),
                v["f1"],
                interval(v["ci"].get("f1")),
                v["roc_auc"],
                interval(v["ci"].get("roc_auc")),
                reasons,
            ]
        )
    per_class = Table(
        [
            "class",
            "support",
            "precision",
            "95% CI",
            "recall",
            "95% CI",
            "F1",
            "95% CI",
            "ROC AUC (one-vs-rest)",
            "95% CI",
            "note",
        ],
        per_class_rows,
        caption="Per-class metrics (each class against the rest)",
    )
    classes = s["classes"]
    matrix = s["confusion_matrix"]
    confusion = Table(
        ["actual \\ predicted", *classes],
        [[a, *(matrix[a][b] for b in classes)] for a in classes],
        caption="Confusion matrix (rows: actual class, columns: predicted class)",
    )
    bars = go.Figure()
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        bars.add_trace(go.Bar(name=label, x=classes, y=[s["per_class"][c][key] for c in classes]))
    bars.update_layout(title="Per-class precision, recall and F1", barmode="group", yaxis_range=[0, 1])
    return Section(
        key=name,
        title="Performance",
        intro=f"How well the model predicts each of {len(classes)} classes on the held-out rows "
        "(macro: the mean over classes; micro: over rows).",
        tables=[Table(["metric", "value", "95% CI", "note"], overall), per_class, confusion],
        figures=[figure_json(bars)],
    )
