"""The bootstrap intervals are honest: on simulated data with known rates, 95% intervals
cover the truth between 93% and 97% of the time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditkit.stats.groups import GroupRules, group_metrics
from auditkit.stats.intervals import delong_auc

SIMULATIONS = 1000
N = 1200
SHARE_F = 0.4
BASE = {"f": 0.5, "m": 0.6}  # P(y = 1 | group)
TPR = {"f": 0.75, "m": 0.85}
FPR = {"f": 0.20, "m": 0.35}


def truth():
    selection = {g: BASE[g] * TPR[g] + (1 - BASE[g]) * FPR[g] for g in BASE}
    return {
        "selection_rate[f]": selection["f"],
        "tpr[m]": TPR["m"],
        "demographic_parity_difference": abs(selection["m"] - selection["f"]),
        "demographic_parity_ratio": min(selection.values()) / max(selection.values()),
        "equalized_odds_difference": max(abs(TPR["m"] - TPR["f"]), abs(FPR["m"] - FPR["f"])),
    }


def simulate(rng):
    sex = np.where(rng.random(N) < SHARE_F, "f", "m")
    base = np.where(sex == "f", BASE["f"], BASE["m"])
    y = (rng.random(N) < base).astype(int)
    p_pred = np.where(y == 1, np.where(sex == "f", TPR["f"], TPR["m"]), np.where(sex == "f", FPR["f"], FPR["m"]))
    return pd.DataFrame({"sex": sex}), y, (rng.random(N) < p_pred).astype(int)


def test_bootstrap_interval_coverage_is_nominal():
    rng = np.random.default_rng(12345)
    expected = truth()
    hits = {key: 0 for key in expected}
    rules = GroupRules(n_boot=1000)
    for _ in range(SIMULATIONS):
        frame, y, pred = simulate(rng)
        report = group_metrics(y, pred, None, frame, [["sex"]], rules, rng)["sex"]
        estimates = {
            "selection_rate[f]": report.groups["f"].rates["selection_rate"],
            "tpr[m]": report.groups["m"].rates["tpr"],
            **{k: report.disparities[k] for k in expected if "[" not in k},
        }
        for key, estimate in estimates.items():
            hits[key] += estimate.ci[0] <= expected[key] <= estimate.ci[1]
    coverage = {key: count / SIMULATIONS for key, count in hits.items()}
    # Equalized odds is the larger of two gaps; its interval holds both at once, so it is conservative.
    ceiling = {"equalized_odds_difference": 0.99}
    assert all(0.93 <= c <= ceiling.get(key, 0.97) for key, c in coverage.items()), coverage


@pytest.mark.parametrize("rates", [(0.5, 0.5), (0.5, 0.51), (0.3, 0.3, 0.3)])
def test_largest_gap_interval_holds_its_estimate_and_covers_near_zero(rates):
    """A largest absolute difference near 0: the percentile interval never covers a true 0 and can
    exclude its own estimate; the disparity interval must do neither."""
    rng = np.random.default_rng(2024)
    truth = {
        "demographic_parity_difference": max(rates) - min(rates),
        "demographic_parity_ratio": min(rates) / max(rates),
    }
    hits = {key: 0 for key in truth}
    runs = 400
    for _ in range(runs):
        group = rng.integers(0, len(rates), N)
        y = (rng.random(N) < 0.5).astype(int)
        pred = (rng.random(N) < np.asarray(rates)[group]).astype(int)
        frame = pd.DataFrame({"g": np.array(["a", "b", "c"])[group]})
        report = group_metrics(y, pred, None, frame, [["g"]], GroupRules(n_boot=1000), rng)["g"]
        for key, value in truth.items():
            estimate = report.disparities[key]
            assert estimate.ci[0] <= estimate.value <= estimate.ci[1], (key, estimate)
            hits[key] += estimate.ci[0] <= value <= estimate.ci[1]
    coverage = {key: count / runs for key, count in hits.items()}
    assert all(c >= 0.93 for c in coverage.values()), coverage


def test_delong_interval_coverage_is_nominal():
    rng = np.random.default_rng(7)
    true_auc = 0.7602499389946279  # P(X1 > X0) for N(1, 1) vs N(0, 1): Phi(1 / sqrt(2))
    hits = 0
    for _ in range(SIMULATIONS):
        y = (rng.random(600) < 0.4).astype(int)
        scores = rng.normal(y.astype(float), 1.0)
        _, (low, high) = delong_auc(y, scores, 0.95)
        hits += low <= true_auc <= high
    assert 0.93 <= hits / SIMULATIONS <= 0.97, hits / SIMULATIONS


def test_delong_point_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert delong_auc(y, scores, 0.95)[0] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_ratio_interval_with_a_zero_rate_holds_its_estimate():
    from auditkit.stats.intervals import smallest_ratio_interval

    rng = np.random.default_rng(0)
    observed = np.array([0.0, 0.5])  # one ratio is 0 at the estimate: no log
    replicates = np.column_stack([rng.binomial(50, 0.01, 1000) / 25, rng.normal(0.5, 0.05, 1000)])
    low, high = smallest_ratio_interval(observed, replicates, 0.95)
    assert low == 0.0 and 0.0 < high < 0.5
    replicates = rng.normal(0.8, 0.05, (1000, 1))
    replicates[:50] = 0.0  # 5% of resamples hit a rate of 0: on the ratios themselves
    low, high = smallest_ratio_interval(np.array([0.8]), replicates, 0.95)
    assert low < 0.8 < high <= 1.0
