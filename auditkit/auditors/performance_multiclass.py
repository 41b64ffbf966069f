"""``performance`` for a multiclass task: per class and macro/micro, with intervals.

Numbers equal scikit-learn's ``precision_recall_fscore_support``, ``f1_score(average=...)``,
``balanced_accuracy_score`` and ``roc_auc_score(multi_class="ovr")`` on the same predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.predictions import Predictions
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.intervals import delong_auc, percentile_interval
from auditkit.stats.multiclass import (
    CLASS_METRICS,
    OVERALL_METRICS,
    class_metrics,
    confusion_replicates,
    macro_auc_replicates,
    overall_metrics,
)

GATEABLE = (*OVERALL_METRICS, "macro_roc_auc")
CLASS_GATEABLE = (*CLASS_METRICS, "roc_auc")

REASONS = {
    "precision": "the class is never predicted",
    "recall": "the class has no rows in the test split",
    "f1": "the class is neither present nor predicted",
    "roc_auc": "the class has no rows, or only rows, in the test split",
}


def class_id(metric: str, name: str) -> str:
    """The gate id of a per-class metric, e.g. ``f1[class=negative]``."""
    return f"{metric}[class={name}]"


def metric_ids(auditor: str, classes: list[str] | None) -> set[str]:
    ids = {f"{auditor}.{m}" for m in GATEABLE}
    return ids | {f"{auditor}.{class_id(m, c)}" for c in classes or [] for m in CLASS_GATEABLE}


class MulticlassPerformanceResult(AuditorResult):
    task: str = "multiclass"
    classes: list[str]
    metrics: dict[str, Any]
    ci: dict[str, list[float] | None]
    per_class: dict[str, dict[str, Any]]
    confusion_matrix: dict[str, dict[str, int]]  # true class -> predicted class -> count

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for name in GATEABLE:
            ci = self.ci.get(name)
            out[name] = MetricValue(
                self.metrics.get(name), tuple(ci) if ci else None, self.metrics.get(f"{name}_reason")
            )
        for c, values in self.per_class.items():
            for name in CLASS_GATEABLE:
                ci = values["ci"].get(name)
                out[class_id(name, c)] = MetricValue(
                    values.get(name), tuple(ci) if ci else None, values.get(f"{name}_reason")
                )
        return out


def _value(array: np.ndarray) -> float | None:
    return None if np.isnan(array) else float(array)


def _interval(replicates: np.ndarray, confidence: float, defined: bool) -> list[float] | None:
    interval, _ = percentile_interval(replicates, confidence)
    return list(interval) if interval and defined else None


def multiclass_performance(
    p: Predictions, n_boot: int, confidence: float, rng: np.random.Generator
) -> MulticlassPerformanceResult:
    k, y, y_pred = p.n_classes, p.y_true, p.y_pred
    confusion = confusion_replicates(y, y_pred, k, n_boot, rng)  # row 0 observed
    per_class_values, overall = class_metrics(confusion), overall_metrics(confusion)
    metrics: dict[str, Any] = {"n": len(y), "n_classes": k, "n_truncated": p.n_truncated}
    ci: dict[str, list[float] | None] = {}
    for name in OVERALL_METRICS:
        metrics[name] = _value(overall[name][0])
        ci[name] = _interval(overall[name][1:], confidence, metrics[name] is not None)
        if metrics[name] is None:
            metrics[f"{name}_reason"] = "undefined for at least one class (see per_class)"
    per_class: dict[str, dict[str, Any]] = {}
    aucs = []
    for c, name in enumerate(p.classes):
        entry: dict[str, Any] = {"support": int(per_class_values["support"][0, c]), "ci": {}}
        for metric in CLASS_METRICS:
            entry[metric] = _value(per_class_values[metric][0, c])
            entry["ci"][metric] = _interval(per_class_values[metric][1:, c], confidence, entry[metric] is not None)
        members = (y == c).astype(int)
        if 0 < members.sum() < len(y):
            value, interval = delong_auc(members, p.probabilities[:, c], confidence)
            entry["roc_auc"], entry["ci"]["roc_auc"] = float(value), [float(v) for v in interval]
        else:
            entry["roc_auc"], entry["ci"]["roc_auc"] = None, None
        aucs.append(entry["roc_auc"])
        for metric, why in REASONS.items():
            if entry[metric] is None:
                entry[f"{metric}_reason"] = why
        per_class[name] = entry
    if all(a is not None for a in aucs):
        metrics["macro_roc_auc"] = float(np.mean(aucs))
        ci["macro_roc_auc"] = _interval(macro_auc_replicates(y, p.probabilities, n_boot, rng), confidence, True)
    else:
        metrics["macro_roc_auc"], ci["macro_roc_auc"] = None, None
        metrics["macro_roc_auc_reason"] = "a class has no rows, or only rows, in the test split"
    metrics["roc_auc"], metrics["roc_auc_average"] = metrics["macro_roc_auc"], "macro one-vs-rest"
    if metrics["roc_auc"] is None:
        metrics["roc_auc_reason"] = metrics["macro_roc_auc_reason"]
    observed = confusion[0]
    matrix = {a: {b: int(observed[i, j]) for j, b in enumerate(p.classes)} for i, a in enumerate(p.classes)}
    return MulticlassPerformanceResult(
        classes=list(p.classes), metrics=metrics, ci=ci, per_class=per_class, confusion_matrix=matrix
    )


def multiclass_headline(y: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy and the macro/micro averages, without intervals (for the DP runs)."""
    confusion = np.zeros((1, k, k), dtype=np.int64)
    np.add.at(confusion[0], (y, y_pred), 1)
    metrics: dict[str, Any] = {}
    for name, values in overall_metrics(confusion).items():
        metrics[name] = _value(values[0])
        if metrics[name] is None:
            metrics[f"{name}_reason"] = "undefined for at least one class"
    return metrics
