"""The performance auditor's headline numbers from the counts of a streamed audit.

The count metrics and their intervals are the in-memory ones: the same multinomial bootstrap
over the same four confusion cells, so for the same counts and seed they are equal. ROC AUC,
its DeLong interval and the ROC curve come from the score histograms, with the binning error
bound stated (:mod:`auditkit.streaming.auc`). Calibration needs each row's score and is not
computed: the expected calibration error is null with that reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from auditkit.stats.cells import PRED, CellTable, Confusion, Y
from auditkit.stats.intervals import percentile_interval
from auditkit.stats.rates import COUNT_METRICS, performance_metric
from auditkit.streaming.auc import binned_auc
from auditkit.streaming.counts import CountedPredictions

NO_CALIBRATION = "a streamed audit keeps score histograms, not each row's score; calibration is not computed from them"


def performance_from_counts(
    p: CountedPredictions, n_boot: int, confidence: float, rng: np.random.Generator
) -> dict[str, Any]:
    """``metrics``, ``ci``, ``confusion_matrix`` and ``roc_curve`` as the performance auditor reports them."""
    cells, hist = p.overall()
    (tn, fp), (fn, tp) = (int(v) for v in cells[0]), (int(v) for v in cells[1])
    n = tn + fp + fn + tp
    metrics: dict[str, Any] = {"n": n, "n_positive": tp + fn, "n_truncated": 0}
    metrics.update(_headline(tn, fp, fn, tp))
    auc = binned_auc(hist[1], hist[0], confidence)
    if auc is None:
        metrics["roc_auc"], metrics["roc_auc_reason"] = None, "the test split holds only one label"
    else:
        metrics["roc_auc"], metrics["roc_auc_binning_error"] = auc.value, auc.error_bound
    metrics["expected_calibration_error"], metrics["expected_calibration_error_reason"] = None, NO_CALIBRATION
    keys = pd.DataFrame([(y, pred) for y in (0, 1) for pred in (0, 1) if cells[y, pred]], columns=[Y, PRED])
    table = CellTable(keys, np.array([cells[y, pred] for y, pred in keys.to_numpy()], np.int64), np.zeros(0, np.int64))
    y, pred = keys[Y].to_numpy(), keys[PRED].to_numpy()
    confusion = Confusion.by_group(table.replicates(n_boot, rng), np.zeros(len(keys), dtype=int), 1, y, pred)
    ci: dict[str, list[float] | None] = {}
    for name in COUNT_METRICS:  # what the in-memory auditor does with the same cells and generator
        interval, _ = percentile_interval(performance_metric(confusion, name), confidence)
        ci[name] = list(interval) if interval and metrics.get(name) is not None else None
    ci["roc_auc"] = list(auc.ci) if auc is not None else None
    return {
        "metrics": metrics,
        "ci": ci,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "roc_curve": _roc_curve(hist) if auc is not None else {"fpr": [], "tpr": []},
    }


def _headline(tn: int, fp: int, fn: int, tp: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, precision, recall (TPR), F1, FPR and selection rate from the cells;
    None with a reason where a denominator is empty, as the in-memory ``headline_metrics``."""
    n, positives, negatives = tn + fp + fn + tp, tp + fn, tn + fp
    out: dict[str, Any] = {"accuracy": (tp + tn) / n}
    if positives and negatives:
        out["balanced_accuracy"] = (tp / positives + tn / negatives) / 2
    else:
        out["balanced_accuracy"], out["balanced_accuracy_reason"] = None, "the test split holds only one label"
    for name, value, denominator, why in (
        ("precision", tp, tp + fp, "no predicted positives"),
        ("recall", tp, positives, "no true positives"),
        ("fpr", fp, negatives, "no true negatives"),
    ):
        out[name] = value / denominator if denominator else None
        if not denominator:
            out[f"{name}_reason"] = why
    precision, recall = out["precision"], out["recall"]
    if precision is not None and recall is not None and precision + recall > 0:
        out["f1"] = 2 * precision * recall / (precision + recall)
    else:
        out["f1"], out["f1_reason"] = None, "precision or recall undefined or zero"
    out["selection_rate"] = (tp + fp) / n
    return out


def _roc_curve(hist: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """The ROC curve of the binned scores (thresholds at bin edges, highest first), thinned to ``points``."""
    filled = (hist[0] + hist[1])[::-1] > 0  # empty bins add no point
    positives, negatives = hist[1][::-1].cumsum()[filled], hist[0][::-1].cumsum()[filled]
    tpr = np.concatenate([[0.0], positives / positives[-1]])
    fpr = np.concatenate([[0.0], negatives / negatives[-1]])
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), points)).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
