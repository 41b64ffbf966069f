"""Rates from confusion counts and the disparities between groups, as fairlearn defines them.

Everything works on arrays with a leading replicate axis, so the point estimate and a
thousand bootstrap replicates go through the same code. A zero denominator gives NaN
here; callers turn NaN into ``None`` with a reason, never into a number.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from auditkit.stats.cells import Confusion

RATES: dict[str, Callable[[Confusion], tuple[np.ndarray, np.ndarray]]] = {
    # name -> (numerator, denominator)
    "base_rate": lambda c: (c.positives, c.n),
    "selection_rate": lambda c: (c.predicted_positives, c.n),
    "tpr": lambda c: (c.tp, c.positives),
    "fpr": lambda c: (c.fp, c.negatives),
    "fnr": lambda c: (c.fn, c.positives),
    "precision": lambda c: (c.tp, c.predicted_positives),
    "accuracy": lambda c: (c.tp + c.tn, c.n),
}

#: What each rate's denominator counts, for the small-group rule and its explanation.
DENOMINATOR = {"tpr": "positives", "fnr": "positives", "fpr": "negatives", "precision": "predicted positives"}


def rate(confusion: Confusion, name: str) -> np.ndarray:
    numerator, denominator = RATES[name](confusion)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def difference(values: np.ndarray, overall: np.ndarray, method: str) -> np.ndarray:
    """fairlearn's MetricFrame.difference over the group axis (last): (R, G) -> (R,)."""
    if method == "between_groups":
        return values.max(axis=-1) - values.min(axis=-1)
    return np.abs(values - overall).max(axis=-1)


def ratio(values: np.ndarray, overall: np.ndarray, method: str) -> np.ndarray:
    """fairlearn's MetricFrame.ratio: min/max between groups, or each group to overall folded below 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            high = values.max(axis=-1)
            return np.where(high > 0, values.min(axis=-1) / np.where(high > 0, high, 1), np.nan)
        ratios = values / overall
        ratios = np.where(ratios > 1, 1 / ratios, ratios)
        return np.where((overall > 0).all(axis=-1), ratios.min(axis=-1), np.nan)


#: Overall performance metrics that are functions of the confusion counts.
COUNT_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")


def performance_metric(confusion: Confusion, metric: str) -> np.ndarray:
    """An overall metric from single-group confusion counts ``(R, 1)`` -> ``(R,)``; NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "balanced_accuracy":
            return ((rate(confusion, "tpr") + 1 - rate(confusion, "fpr")) / 2)[:, 0]
        if metric == "f1":
            p, r = rate(confusion, "precision"), rate(confusion, "tpr")
            return np.where(p + r > 0, 2 * p * r / (p + r), np.nan)[:, 0]
    return rate(confusion, {"recall": "tpr"}.get(metric, metric))[:, 0]
