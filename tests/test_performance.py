from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from auditkit.auditors.performance import PerformanceAuditor, PerformanceSettings, expected_calibration_error
from auditkit.predictions import Predictions


class FixedContext:
    seed = 0

    def __init__(self, predictions):
        self._p = predictions

    def predictions(self, split="test"):
        return self._p


def simulated(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1)
    return Predictions(np.arange(n).astype(str), y, scores, (scores >= 0.5).astype(int))


def test_metrics_equal_sklearn():
    p = simulated()
    m = PerformanceAuditor(PerformanceSettings()).run(FixedContext(p)).metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(p.y_true, p.y_pred), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(p.y_true, p.y_pred), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(p.y_true, p.scores), abs=1e-12)
    assert m["precision"] == pytest.approx(skm.precision_score(p.y_true, p.y_pred), abs=1e-12)
    assert m["recall"] == pytest.approx(skm.recall_score(p.y_true, p.y_pred), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(p.y_true, p.y_pred), abs=1e-12)


def test_ece_equals_a_direct_loop():
    p = simulated(seed=1)
    bins = 10
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        mask = (p.scores >= lo) & ((p.scores < hi) if b < bins - 1 else (p.scores <= hi))
        if mask.any():
            total += mask.sum() / len(p.scores) * abs(p.scores[mask].mean() - p.y_true[mask].mean())
    assert expected_calibration_error(p.y_true, p.scores, bins) == pytest.approx(total, abs=1e-12)


def test_ece_of_a_calibrated_model_is_small_and_of_a_miscalibrated_one_large():
    rng = np.random.default_rng(2)
    scores = rng.random(200_000)
    y = (rng.random(200_000) < scores).astype(int)
    assert expected_calibration_error(y, scores, 15) < 0.01
    assert expected_calibration_error(y, np.clip(scores + 0.2, 0, 1), 15) > 0.15


def test_single_label_gives_null_with_reason_not_nan():
    p = Predictions(np.array(["a", "b"]), np.array([1, 1]), np.array([0.9, 0.2]), np.array([1, 0]))
    result = PerformanceAuditor(PerformanceSettings()).run(FixedContext(p))
    assert result.metrics["roc_auc"] is None and "one label" in result.metrics["roc_auc_reason"]
    values = result.metric_values()
    assert values["roc_auc"].value is None and values["roc_auc"].reason


def test_count_metrics_from_confusion_counts_equal_sklearn():
    from auditkit.stats.cells import Confusion
    from auditkit.stats.rates import COUNT_METRICS, performance_metric

    p = simulated(seed=4)
    tn, fp, fn, tp = skm.confusion_matrix(p.y_true, p.y_pred).ravel()
    confusion = Confusion(*(np.array([[v]], dtype=float) for v in (tp, fp, tn, fn)))
    reference = {
        "accuracy": skm.accuracy_score,
        "balanced_accuracy": skm.balanced_accuracy_score,
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
    }
    for name in COUNT_METRICS:
        assert performance_metric(confusion, name)[0] == pytest.approx(reference[name](p.y_true, p.y_pred), abs=1e-12)


def test_intervals_bracket_the_estimates():
    result = PerformanceAuditor(PerformanceSettings()).run(FixedContext(simulated(seed=5)))
    for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc"):
        low, high = result.ci[name]
        assert low < result.metrics[name] < high and high - low < 0.1
