"""Every group rate and disparity equals fairlearn's own functions on the same predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm
from sklearn.metrics import roc_auc_score

from auditkit.stats.groups import GroupRules, group_metrics
from tests.conftest import ROOT

TOL = 1e-9


def synthetic(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["female", "male"], n, p=[0.35, 0.65]),
            "age_group": rng.choice(["young", "middle", "old"], n, p=[0.2, 0.5, 0.3]),
        }
    )
    logit = -0.3 + 0.8 * (frame["sex"] == "male") + 0.5 * (frame["age_group"] == "old") + rng.normal(0, 1, n)
    y = (logit + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    scores = 1 / (1 + np.exp(-logit.to_numpy()))
    return frame, y, (scores >= 0.5).astype(int), scores


def german_credit_like():
    """The real German credit rows with a transparent rule as the 'model'."""
    frame = pd.read_csv(ROOT / "audits/data/german_credit.csv")
    frame["age_group"] = np.where(frame["age"] < 25, "under 25", "25 and over")
    y = (frame["credit_risk"] == "good").astype(int).to_numpy()
    score = 1 / (
        1 + np.exp(-(frame["duration_months"].rsub(30) / 10 + (frame["checking_account"] == "no checking account")))
    )
    return frame[["sex", "age_group"]], y, (score.to_numpy() >= 0.5).astype(int), score.to_numpy()


def fairlearn_frame(y, pred, sensitive):
    fns = {
        "selection_rate": flm.selection_rate,
        "tpr": flm.true_positive_rate,
        "fpr": flm.false_positive_rate,
        "fnr": flm.false_negative_rate,
        "accuracy": lambda a, b: float((a == b).mean()),
        "base_rate": lambda a, b: float(np.mean(a)),
    }
    return flm.MetricFrame(metrics=fns, y_true=y, y_pred=pred, sensitive_features=sensitive)


@pytest.mark.parametrize("data", [synthetic, german_credit_like])
@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
def test_groups_and_disparities_equal_fairlearn(data, method):
    frame, y, pred, scores = data()
    slices = [["sex"], ["age_group"], ["sex", "age_group"]]
    rules = GroupRules(min_group_size=1, min_class_size=1, method=method, n_boot=50)
    reports = group_metrics(y, pred, scores, frame, slices, rules, np.random.default_rng(0))
    for features in slices:
        name = "*".join(features)
        sensitive = frame[features] if len(features) > 1 else frame[features[0]]
        mf = fairlearn_frame(y, pred, sensitive)
        report = reports[name]
        for key, row in mf.by_group.iterrows():
            group = "*".join(key) if isinstance(key, tuple) else key
            for rate in ("selection_rate", "tpr", "fpr", "fnr", "accuracy", "base_rate"):
                assert report.groups[group].rates[rate].value == pytest.approx(row[rate], abs=TOL), (name, group, rate)
            mask = (frame[features].astype(str).agg("*".join, axis=1) == group).to_numpy()
            assert report.groups[group].n == mask.sum()

            assert report.groups[group].rates["roc_auc"].value == pytest.approx(
                roc_auc_score(y[mask], scores[mask]), abs=TOL
            )
        kwargs = {"y_true": y, "y_pred": pred, "sensitive_features": sensitive, "method": method}
        expected = {
            "demographic_parity_difference": flm.demographic_parity_difference(**kwargs),
            "demographic_parity_ratio": flm.demographic_parity_ratio(**kwargs),
            "equalized_odds_difference": flm.equalized_odds_difference(**kwargs),
            "equalized_odds_ratio": flm.equalized_odds_ratio(**kwargs),
            "equal_opportunity_difference": flm.equal_opportunity_difference(**kwargs),
            "equal_opportunity_ratio": flm.equal_opportunity_ratio(**kwargs),
            "accuracy_difference": mf.difference(method=method)["accuracy"],
        }
        for metric, value in expected.items():
            assert report.disparities[metric].value == pytest.approx(value, abs=TOL), (name, metric)


def test_group_without_positives_is_insufficient_and_left_out():
    frame, y, pred, scores = synthetic(seed=1)
    frame = frame.copy()
    frame.loc[:39, "age_group"] = "no positives"
    y = y.copy()
    y[:40] = 0
    rules = GroupRules(min_group_size=30, min_class_size=10, n_boot=50)
    report = group_metrics(y, pred, scores, frame, [["age_group"]], rules, np.random.default_rng(0))["age_group"]
    group = report.groups["no positives"]
    assert group.rates["tpr"].value is None and "no positives" in group.rates["tpr"].reason
    assert group.rates["roc_auc"].value is None
    assert "tpr" in group.insufficient and group.status == "ok"
    assert group.rates["selection_rate"].value == pytest.approx(pred[:40].mean())
    # fairlearn would call this group's TPR 0.0; here it is left out of TPR-based disparities.
    assert "no positives" not in report.compared["equal_opportunity_difference"]
    assert "no positives" in report.compared["demographic_parity_ratio"]
    keep = frame["age_group"] != "no positives"
    expected = flm.equal_opportunity_difference(
        y_true=y[keep], y_pred=pred[keep], sensitive_features=frame.loc[keep, "age_group"]
    )
    assert report.disparities["equal_opportunity_difference"].value == pytest.approx(expected, abs=TOL)
    expected_dp = flm.demographic_parity_ratio(y_true=y, y_pred=pred, sensitive_features=frame["age_group"])
    assert report.disparities["demographic_parity_ratio"].value == pytest.approx(expected_dp, abs=TOL)


def test_small_group_is_insufficient_and_leaves_too_few_to_compare():
    frame = pd.DataFrame({"sex": ["f"] * 10 + ["m"] * 200})
    y = np.tile([0, 1], 105)
    pred = np.tile([1, 0, 1], 70)
    report = group_metrics(y, pred, None, frame, [["sex"]], GroupRules(n_boot=50), np.random.default_rng(0))["sex"]
    assert report.groups["f"].status == "insufficient" and "min_group_size" in report.groups["f"].insufficient["all"]
    dp = report.disparities["demographic_parity_ratio"]
    assert dp.value is None and "need 2" in dp.reason


def test_zero_denominator_ratio_is_none_not_nan():
    frame = pd.DataFrame({"sex": ["f"] * 50 + ["m"] * 50})
    y = np.tile([0, 1], 50)
    pred = 1 - y  # no true positive in any group: the TPR ratio is 0/0
    rules = GroupRules(min_class_size=1, n_boot=50)
    report = group_metrics(y, pred, None, frame, [["sex"]], rules, np.random.default_rng(0))["sex"]
    eo = report.disparities["equal_opportunity_ratio"]
    assert eo.value is None and "rate of 0 in the denominator" in eo.reason
    assert report.disparities["equal_opportunity_difference"].value == 0.0


def test_a_constant_prediction_withholds_every_disparity():
    frame = pd.DataFrame({"sex": ["f"] * 50 + ["m"] * 50})
    y = np.tile([0, 1], 50)
    rules = GroupRules(min_class_size=1, n_boot=50)
    for pred, which in ((np.zeros(100, dtype=int), "no row"), (np.ones(100, dtype=int), "every row")):
        report = group_metrics(y, pred, None, frame, [["sex"]], rules, np.random.default_rng(0))["sex"]
        for name, estimate in report.disparities.items():
            assert estimate.value is None and estimate.ci is None, name
            assert estimate.reason.startswith(f"{which} is predicted positive")
        assert report.groups["f"].rates["selection_rate"].value == float(pred[0])  # the rates stay


def test_intervals_contain_the_estimate_and_shrink_with_n():
    widths = []
    for n in (1000, 16000):
        frame, y, pred, scores = synthetic(n=n, seed=2)
        report = group_metrics(y, pred, scores, frame, [["sex"]], GroupRules(), np.random.default_rng(0))["sex"]
        dp = report.disparities["demographic_parity_ratio"]
        assert dp.ci[0] <= dp.value <= dp.ci[1]
        widths.append(dp.ci[1] - dp.ci[0])
    assert widths[1] < widths[0] / 2.5  # about 1/sqrt(16) = 1/4
