"""Check what a model returns against the task before any auditor reads it.

A model built for another task (three classes on a binary audit, a regressor, a graph whose
"probabilities" are raw logits) returns numbers of the wrong shape or range. Sliced or reordered,
they would give plausible but wrong metrics; every adapter passes its output through here first,
so the user gets one line naming the output and what the task expects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from auditkit.errors import AuditError
from auditkit.predictions import Predictions

#: What messages call the output of a model whose probabilities auditkit computes from its logits.
SOFTMAX = "the softmax of the model's logits"
#: How far a row of probabilities may sum from 1: float32 softmax outputs are off by ~1e-7 per class.
SUM_TOLERANCE = 1e-3
#: How far outside [0, 1] a probability may lie from float rounding alone (then it is clipped).
RANGE_TOLERANCE = 1e-6


def expected_columns(classes: Sequence[str]) -> str:
    """What the task expects of a probability output, in words: "the binary task expects 2 (...)"."""
    if len(classes) == 2:
        return f"the binary task expects 2 (one per label: {classes[0]}, {classes[1]})"
    return f"the multiclass task expects {len(classes)} (one per class: {', '.join(classes)})"


def check_probabilities(values: object, classes: Sequence[str], ids: Sequence[str], what: str) -> np.ndarray:
    """``values`` as float64 (n, k) class probabilities, one column per class; AuditError when they are not.

    ``classes`` are the task's classes (k of them), ``ids`` the rows scored, ``what`` names the output in
    messages (e.g. "model.path m.onnx: output 'probabilities'"). Shape first (a regressor's (n,) or (n, 1),
    k columns for another task), then finite values, the range [0, 1] (logits fail here) and row sums.
    """
    array = np.asarray(values, dtype=np.float64)
    n, k = len(ids), len(classes)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        shape = "(n,)" if array.ndim == 1 else "(n, 1)"
        raise AuditError(
            f"{what} is a single output of shape {shape}; expected class probabilities of shape (n, {k}): "
            f"{expected_columns(classes)}. A regression model, or a single score? export the class probabilities"
        )
    if array.ndim != 2:
        raise AuditError(f"{what} has shape {array.shape}; expected class probabilities of shape (n, {k})")
    if array.shape[0] != n:
        raise AuditError(f"{what} has {array.shape[0]} rows for {n} inputs; expected one row per input")
    if array.shape[1] != k:
        raise AuditError(f"{what} has {array.shape[1]} columns; {expected_columns(classes)}")
    array = check_range(array, ids, what)
    gaps = np.abs(array.sum(axis=1) - 1.0)
    if gaps.size and gaps.max() > SUM_TOLERANCE:
        worst = int(gaps.argmax())
        raise AuditError(
            f"{what}: rows do not sum to 1 (largest gap {gaps[worst]:.3g}, at id {ids[worst]}); expected one "
            "probability per class (independent sigmoids, or scores that are not probabilities?)"
        )
    return array


def check_scores(values: object, ids: Sequence[str], what: str) -> np.ndarray:
    """``values`` as float64 (n,) positive-class probabilities: finite and in [0, 1]; AuditError otherwise."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) != len(ids):
        raise AuditError(f"{what} has shape {array.shape}; expected one score per row ({len(ids)})")
    return check_range(array, ids, what)


def check_range(array: np.ndarray, ids: Sequence[str], what: str) -> np.ndarray:
    """``array`` with no NaN or infinity and every value in [0, 1] (rounding clipped away)."""
    rows = array.reshape(len(array), -1)
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise AuditError(
            f"{what} holds missing (NaN) or infinite values in {int(bad.sum())} of {len(rows)} rows "
            f"(first id {ids[int(bad.argmax())]}); expected probabilities in [0, 1]"
        )
    low, high = float(array.min(initial=0.0)), float(array.max(initial=1.0))
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        outside = ((rows < -RANGE_TOLERANCE) | (rows > 1 + RANGE_TOLERANCE)).any(axis=1)
        raise AuditError(
            f"{what} holds values outside [0, 1], not probabilities (min {low:.3g}, max {high:.3g}; first at "
            f"id {ids[int(outside.argmax())]}): raw logits or scores? give the softmax / probability output"
        )
    return np.clip(array, 0.0, 1.0)


def checked(predictions: Predictions, what: str) -> Predictions:
    """``predictions`` once their probabilities passed :func:`check_probabilities` (a softmax can still be NaN)."""
    check_probabilities(predictions.probabilities, predictions.classes, predictions.ids, what)
    return predictions
