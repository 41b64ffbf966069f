"""Choices a run makes on the training split only, and the check that a run learned anything.

A validation carve-out of the training split picks each run's learning rate, epochs and
decision threshold; the test split is never read for a choice. A run whose test
predictions are constant, or whose balanced accuracy is not distinguishable from chance,
is degenerate: nothing derived from it (fairness cost, attack figures) is a finding.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split
from torch.utils.data import Subset

from auditkit.stats.intervals import percentile_interval
from auditkit.training import TrainingData


def validation_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, validation) of the training split, stratified by label."""
    rows = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if (counts[counts > 0] >= 2).all() else None
    fit, val = train_test_split(rows, test_size=share, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(val)


def subset(data: TrainingData, rows: np.ndarray) -> TrainingData:
    return TrainingData(Subset(data.dataset, rows.tolist()), data.collate)


def choose_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the best balanced accuracy (Youden's J) on these rows; 0.5 if undefined."""
    if not 0 < y.sum() < len(y):
        return 0.5
    fpr, tpr, thresholds = skm.roc_curve(y, scores)
    j = tpr - fpr
    best = np.flatnonzero(j == j.max())
    finite = [t for t in thresholds[best] if np.isfinite(t)]
    if not finite:
        return 0.5
    return float(min(finite, key=lambda t: abs(t - 0.5)))


def constant_reason(y_pred: np.ndarray) -> str | None:
    classes = np.unique(y_pred)
    if len(classes) < 2:
        return f"the model predicts label {int(classes[0]) if len(classes) else '-'} for every test row"
    return None


def why_inconclusive(run: str | None, reference: str | None) -> str | None:
    """Why a run's comparisons support no conclusion: its own degeneracy, or its reference's."""
    if reference:
        return f"the non-private reference run is degenerate: {reference}"
    return f"this run is degenerate: {run}" if run else None


def degenerate_reason(
    y: np.ndarray, y_pred: np.ndarray, n_boot: int, rng: np.random.Generator, confidence: float = 0.95
) -> str | None:
    """Why these predictions support no conclusion, or None.

    Constant predictions, or a balanced-accuracy interval (multinomial bootstrap of the
    confusion cells) that contains 0.5, i.e. no better than chance.
    """
    constant = constant_reason(y_pred)
    if constant:
        return constant
    labels = np.unique(y)
    if len(labels) < 2:
        return None  # balanced accuracy undefined; the constant check above is all that applies
    cells = np.array([[(y == a) & (y_pred == b) for b in labels] for a in labels]).sum(axis=2).ravel()
    draws = rng.multinomial(len(y), cells / cells.sum(), size=n_boot).reshape(n_boot, len(labels), len(labels))
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.diagonal(draws, axis1=1, axis2=2) / draws.sum(axis=2)
    balanced = np.nanmean(recall, axis=1)
    interval, _ = percentile_interval(balanced, confidence)
    if interval is not None and interval[0] <= 0.5 <= interval[1]:
        point = float(skm.balanced_accuracy_score(y, y_pred))
        return (
            f"balanced accuracy {point:.3f} (95% CI {interval[0]:.3f} to {interval[1]:.3f}) "
            "is not distinguishable from chance (0.5)"
        )
    return None
