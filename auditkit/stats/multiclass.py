"""Multiclass metrics from k x k confusion counts, with the cell bootstrap of :mod:`auditkit.stats.cells`.

Like the binary rates, everything works on arrays with a leading replicate axis, and a zero
denominator gives NaN, which callers report as ``None`` with a reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from auditkit.stats.cells import PRED, CellTable, Y

#: Per-class metrics from the confusion counts, as scikit-learn's precision_recall_fscore_support.
CLASS_METRICS = ("precision", "recall", "f1")
#: Overall metrics from the confusion counts.
OVERALL_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "micro_precision",
    "micro_recall",
    "micro_f1",
)


def confusion_replicates(
    y: np.ndarray, y_pred: np.ndarray, k: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``(1 + n_boot, k, k)`` confusion counts [true, predicted]: row 0 observed, then bootstrap resamples."""
    cells = CellTable.from_frame(pd.DataFrame({Y: y, PRED: y_pred}), [Y, PRED])
    counts = np.vstack([cells.observed(), cells.replicates(n_boot, rng)])  # (R, C)
    out = np.zeros((len(counts), k, k), dtype=np.int64)
    out[:, cells.keys[Y].to_numpy(), cells.keys[PRED].to_numpy()] = counts
    return out


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def class_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class: ``(R, k, k)`` -> ``(R, k)`` each.

    F1 is 2tp / (2tp + fp + fn), undefined only when the class is neither present nor predicted.
    """
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    predicted, support = confusion.sum(axis=1), confusion.sum(axis=2)
    return {
        "precision": _divide(tp, predicted),
        "recall": _divide(tp, support),
        "f1": _divide(2 * tp, predicted + support),
        "support": support,
    }


def overall_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro and micro averages: ``(R, k, k)`` -> ``(R,)`` each.

    Balanced accuracy is the mean recall over the classes present (as scikit-learn); a macro
    average is NaN when any class's value is undefined, never an average that skips a class.
    """
    per_class = class_metrics(confusion)
    tp = np.diagonal(confusion, axis1=1, axis2=2).sum(axis=1)
    n = confusion.sum(axis=(1, 2))
    present = per_class["support"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        balanced = np.where(present, per_class["recall"], 0).sum(axis=1) / present.sum(axis=1)
    out = {"accuracy": _divide(tp, n), "balanced_accuracy": balanced}
    for name in CLASS_METRICS:
        out[f"macro_{name}"] = per_class[name].mean(axis=1)  # NaN propagates
        out[f"micro_{name}"] = _divide(tp, n)  # single-label: every micro average is the accuracy
    return out


def macro_auc_replicates(
    y: np.ndarray, probabilities: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 100
) -> np.ndarray:
    """Macro one-vs-rest ROC AUC over ``n_boot`` row resamples (NaN where a class is missing)."""
    k, n = probabilities.shape[1], len(y)
    out = []
    for start in range(0, n_boot, chunk):
        rows = rng.integers(0, n, (min(chunk, n_boot - start), n))
        per_class = []
        for c in range(k):
            members = y[rows] == c  # (B, n)
            m = members.sum(axis=1)
            ranks = stats.rankdata(probabilities[rows, c], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = ((ranks * members).sum(axis=1) - m * (m + 1) / 2) / (m * (n - m))
            per_class.append(np.where((m > 0) & (m < n), value, np.nan))
        out.append(np.mean(per_class, axis=0))
    return np.concatenate(out)
