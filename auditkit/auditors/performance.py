"""``performance``: how well the model predicts, on the held-out split."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn import metrics as skm

from auditkit.auditors.base import AuditContext, Auditor
from auditkit.auditors.performance_multiclass import MulticlassPerformanceResult, multiclass_performance
from auditkit.auditors.performance_multiclass import metric_ids as multiclass_metric_ids
from auditkit.config import AuditConfigBase, StrictModel
from auditkit.predictions import Predictions, expect
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.cells import PRED, CellTable, Confusion, Y
from auditkit.stats.intervals import delong_auc, percentile_interval
from auditkit.stats.multiclass import CLASS_METRICS, OVERALL_METRICS
from auditkit.stats.rates import COUNT_METRICS, performance_metric
from auditkit.streaming.counts import CountedPredictions
from auditkit.streaming.performance import performance_from_counts

GATEABLE = ("accuracy", "balanced_accuracy", "roc_auc", "expected_calibration_error", "precision", "recall", "f1")
#: Metrics of the predicted labels alone: null for a constant classifier (ROC AUC and calibration read scores).
LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "fpr", "selection_rate")


class PerformanceSettings(StrictModel):
    calibration_bins: int = Field(15, ge=2, le=100, description="Equal-width bins of the score for calibration.")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_boot: int = Field(
        1000, ge=50, le=100_000, description="Bootstrap replicates for the count-based metrics' intervals."
    )


class CalibrationBin(BaseModel):
    lower: float
    upper: float
    n: int
    mean_score: float | None
    positive_rate: float | None


class PerformanceResult(AuditorResult):
    metrics: dict[str, Any]
    ci: dict[str, list[float] | None]
    confusion_matrix: dict[str, int]
    calibration: list[CalibrationBin]
    roc_curve: dict[str, list[float]]

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for name in GATEABLE:
            value, ci = self.metrics.get(name), self.ci.get(name)
            reason = None if value is not None else self.metrics.get(f"{name}_reason")
            out[name] = MetricValue(value, tuple(ci) if ci else None, reason)
        return out


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, bins: int) -> float:
    """Sum over equal-width score bins of (bin share) x |mean score - positive rate|."""
    index = np.minimum((scores * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    score_sums = np.bincount(index, weights=scores, minlength=bins)
    positive_sums = np.bincount(index, weights=y_true, minlength=bins)
    filled = counts > 0
    gaps = np.abs(score_sums[filled] - positive_sums[filled])  # n_b * |mean score - rate|
    return float(gaps.sum() / len(scores))


def calibration_bins(y_true: np.ndarray, scores: np.ndarray, bins: int) -> list[CalibrationBin]:
    index = np.minimum((scores * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        out.append(
            CalibrationBin(
                lower=b / bins,
                upper=(b + 1) / bins,
                n=n,
                mean_score=float(scores[mask].mean()) if n else None,
                positive_rate=float(y_true[mask].mean()) if n else None,
            )
        )
    return out


def headline_metrics(y: np.ndarray, y_pred: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, ROC AUC, precision, recall, F1; None with a reason where undefined.

    The one implementation: the privacy auditor scores each of its runs with it too.
    """
    tp = int(((y == 1) & (y_pred == 1)).sum())
    fp = int(((y == 0) & (y_pred == 1)).sum())
    fn = int(((y == 1) & (y_pred == 0)).sum())
    metrics: dict[str, Any] = {"accuracy": float(skm.accuracy_score(y, y_pred))}
    both_classes = 0 < y.sum() < len(y)
    for name, fn_ in (("balanced_accuracy", skm.balanced_accuracy_score), ("roc_auc", skm.roc_auc_score)):
        if both_classes:
            metrics[name] = float(fn_(y, scores if name == "roc_auc" else y_pred))
        else:
            metrics[name] = None
            metrics[f"{name}_reason"] = "the test split holds only one label"
    for name, value, denominator in (("precision", tp, tp + fp), ("recall", tp, tp + fn)):
        metrics[name] = value / denominator if denominator else None
        if not denominator:
            metrics[f"{name}_reason"] = "no predicted positives" if name == "precision" else "no true positives"
    precision, recall = metrics["precision"], metrics["recall"]
    if precision is not None and recall is not None and precision + recall > 0:
        metrics["f1"] = 2 * precision * recall / (precision + recall)
    else:
        metrics["f1"], metrics["f1_reason"] = None, "precision or recall undefined or zero"
    return metrics


def constant_reason(predicted: dict[str, int]) -> str | None:
    """Why label-based metrics say nothing, or None: the model predicts one label for every row
    (its accuracy is then that label's share, whatever the model learned)."""
    used = [label for label, count in predicted.items() if count]
    if len(used) != 1:
        return None
    return (
        f"the model predicts {used[0]} for every test row: a constant classifier's "
        "label-based metrics are not evidence about the model"
    )


def withhold(metrics: dict[str, Any], ci: dict[str, Any], names: tuple[str, ...], reason: str) -> None:
    """Null ``names`` (and their intervals) with ``reason``, in place."""
    for name in names:
        if name in metrics:
            metrics[name], metrics[f"{name}_reason"] = None, reason
            ci[name] = None


def _predicted(cells: dict[str, int]) -> dict[str, int]:
    return {"the negative label": cells["tn"] + cells["fn"], "the positive label": cells["tp"] + cells["fp"]}


def _count_replicates(y: np.ndarray, y_pred: np.ndarray, n_boot: int, rng: np.random.Generator) -> Confusion:
    frame = pd.DataFrame({Y: y, PRED: y_pred})
    cells = CellTable.from_frame(frame, [Y, PRED])
    keys = cells.keys
    return Confusion.by_group(
        cells.replicates(n_boot, rng), np.zeros(len(keys), dtype=int), 1, keys[Y].to_numpy(), keys[PRED].to_numpy()
    )


class PerformanceAuditor(Auditor[PerformanceSettings]):
    """Accuracy, balanced accuracy, ROC AUC, confusion matrix and calibration on the test split."""

    name = "performance"
    Settings = PerformanceSettings
    reads_counts = True

    @classmethod
    def metric_ids(cls, settings: PerformanceSettings, config: AuditConfigBase) -> set[str]:
        if config.data.task == "multiclass":
            return multiclass_metric_ids(cls.name, config.data.classes)
        return {f"{cls.name}.{m}" for m in GATEABLE}

    def _intervals(self, p: Predictions, metrics: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Multinomial bootstrap for the count metrics; DeLong for ROC AUC."""
        confusion = _count_replicates(p.y_true, p.y_pred, self.settings.n_boot, rng)
        ci: dict[str, list[float] | None] = {}
        for name in COUNT_METRICS:
            interval, _ = percentile_interval(performance_metric(confusion, name), self.settings.confidence)
            ci[name] = list(interval) if interval and metrics.get(name) is not None else None
        ci["roc_auc"] = None
        if metrics.get("roc_auc") is not None:
            ci["roc_auc"] = list(delong_auc(p.y_true, p.scores, self.settings.confidence)[1])
        return ci

    def run(self, context: AuditContext) -> PerformanceResult | MulticlassPerformanceResult:
        p = context.predictions("test")
        if isinstance(p, CountedPredictions):  # a streamed audit: the same numbers from counts, AUC binned
            s = self.settings
            counted = performance_from_counts(p, s.n_boot, s.confidence, np.random.default_rng(context.seed))
            if why := constant_reason(_predicted(counted["confusion_matrix"])):
                withhold(counted["metrics"], counted["ci"], LABEL_METRICS, why)
            return PerformanceResult(**counted, calibration=[])
        p = expect(Predictions, p, "auditors.performance")
        if p.n_classes > 2:
            rng = np.random.default_rng(context.seed)
            result = multiclass_performance(p, self.settings.n_boot, self.settings.confidence, rng)
            predicted = {f"class {name!r}": int((p.y_pred == c).sum()) for c, name in enumerate(p.classes)}
            if why := constant_reason(predicted):
                withhold(result.metrics, result.ci, OVERALL_METRICS, why)
                for entry in result.per_class.values():
                    withhold(entry, entry["ci"], CLASS_METRICS, why)
            return result
        y, y_pred, scores = p.y_true, p.y_pred, p.scores
        tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, y_pred, labels=[0, 1]).ravel())
        metrics: dict[str, Any] = {
            "n": len(y),
            "n_positive": int(y.sum()),
            "n_truncated": p.n_truncated,
            **headline_metrics(y, y_pred, scores),
            "expected_calibration_error": expected_calibration_error(y, scores, self.settings.calibration_bins),
        }
        both_classes = 0 < y.sum() < len(y)
        roc = {"fpr": [], "tpr": []}
        if both_classes:
            fpr, tpr, _ = skm.roc_curve(y, scores, drop_intermediate=True)
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
            roc = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
        ci = self._intervals(p, metrics, np.random.default_rng(context.seed))
        if why := constant_reason(_predicted({"tn": tn, "fp": fp, "fn": fn, "tp": tp})):
            withhold(metrics, ci, LABEL_METRICS, why)
        return PerformanceResult(
            metrics=metrics,
            ci=ci,
            confusion_matrix={"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            calibration=calibration_bins(y, scores, self.settings.calibration_bins),
            roc_curve=roc,
        )
