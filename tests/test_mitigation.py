"""The mitigation auditor: fairlearn's own predictions, the trade-off on held-out rows, the fix exported."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from auditkit.mitigation.reductions import LastStepWeights, fit_reduction
from auditkit.mitigation.thresholds import _Scores, decide, fit_thresholds
from auditkit.runner import run_audit
from tests.conftest import base_config, run_cli, write_config

METHODS = {
    "threshold_dp": {"method": "threshold", "constraint": "demographic_parity", "strengths": [0.0, 0.05, 0.2]},
    "threshold_eo": {"method": "threshold", "constraint": "equalized_odds"},
    "eg_dp": {"method": "exponentiated_gradient", "constraint": "demographic_parity"},
    "grid_dp": {"method": "grid_search", "constraint": "demographic_parity"},
}


def biased_frame(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Income-like data whose label favours men through a proxy (hours) and directly."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n, p=[0.6, 0.4])
    hours = rng.normal(40, 6, n) + np.where(sex == "male", 10, 0)
    age = rng.integers(19, 70, n)
    job = rng.choice(["clerk", "manager", "crafts"], n)
    logit = 0.2 * (hours - 46) + 0.03 * (age - 40) + np.where(job == "manager", 1.0, 0)
    logit += np.where(sex == "male", 0.8, 0)
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "high", "low")
    return pd.DataFrame({"pid": [f"p{i}" for i in range(n)], "sex": sex, "hours": hours.round(1), "age": age,
                         "job": job, "income": label})  # fmt: skip


def mitigation_config(model: dict, methods: dict) -> dict:
    config = base_config("data.csv", "model")
    config["data"] = {
        "path": "data.csv", "label": "income", "positive_label": "high", "negative_label": "low",
        "id_column": "pid", "sensitive_features": ["sex"], "split": {"test_size": 0.4, "stratify": ["sex"]},
    }  # fmt: skip
    config["model"] = model
    config["auditors"] = {"performance": {"n_boot": 200}, "fairness": {"n_boot": 200}, "mitigation": {
        "methods": methods, "n_boot": 200, "validation_share": 0.5}}  # fmt: skip
    config["gates"] = [
        {"metric": "mitigation.demographic_parity_ratio[sex|method=threshold_dp]", "op": ">=", "threshold": 0.8},
        {"metric": "mitigation.accuracy_cost[method=threshold_dp]", "op": "<=", "threshold": 0.1},
    ]
    return config


SKLEARN = {"adapter": "sklearn", "path": "model", "build": {"features": ["hours", "age", "job"]}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mitigation")
    biased_frame().to_csv(folder / "data.csv", index=False)
    config = write_config(folder, mitigation_config(SKLEARN, METHODS))
    result, out = run_audit(config, out=folder / "out")
    return folder, result, out


def test_thresholds_equal_fairlearns_predictions():
    rng = np.random.default_rng(1)
    n = 500
    groups = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    scores = np.clip(0.35 * y + 0.15 * (groups == "a") + 0.5 * rng.random(n), 0, 1)
    for constraint, tol in [("demographic_parity", None), ("demographic_parity", 0.05), ("equalized_odds", None),
                            ("true_positive_rate_parity", None)]:  # fmt: skip
        rules = fit_thresholds(scores, y, groups, constraint, tol)
        theirs = ThresholdOptimizer(
            estimator=_Scores(), constraints=constraint, prefit=True, predict_method="predict", tol=tol
        ).fit(scores[:, None], y, sensitive_features=groups)
        expected = theirs.predict(scores[:, None], sensitive_features=groups, random_state=3)
        assert (decide(rules, scores, groups, 3) == expected).all(), constraint


def test_reductions_equal_fairlearns_predictions():
    import fairlearn.reductions as reductions

    frame = biased_frame(600, seed=2)
    X, y = frame[["hours", "age", "job"]], (frame["income"] == "high").astype(int).to_numpy()
    groups = frame["sex"].to_numpy()
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["job"]), (StandardScaler(), ["hours", "age"])), LogisticRegression()
    )
    ours = fit_reduction("exponentiated_gradient", "demographic_parity", 0.02, pipeline, X, y, groups, 5)
    theirs = reductions.ExponentiatedGradient(LastStepWeights(pipeline), reductions.DemographicParity(), eps=0.02)
    theirs.fit(X, y, sensitive_features=groups)
    assert (ours.predict(X, 5) == theirs.predict(X, random_state=5)).all()
    ours = fit_reduction("grid_search", "equalized_odds", 0.7, pipeline, X, y, groups, 5)
    np.random.seed(5)
    theirs = reductions.GridSearch(
        LastStepWeights(pipeline), reductions.EqualizedOdds(), grid_size=11, constraint_weight=0.7
    ).fit(X, y, sensitive_features=groups)
    assert (ours.predict(X, 5) == theirs.predict(X)).all()


def test_threshold_mitigation_closes_the_gap_at_a_measured_cost(run):
    _, result, _ = run
    m = result.auditors["mitigation"]
    values = m.metric_values()
    before = values["demographic_parity_ratio[sex|method=none]"].value
    after = values["demographic_parity_ratio[sex|method=threshold_dp]"].value
    assert before < 0.8 <= after  # the proxy keeps the model unfair; group thresholds fix it on held-out rows
    cost = m.methods["threshold_dp"]
    assert cost.accuracy_cost == pytest.approx(m.methods["none"].accuracy - cost.accuracy)
    assert cost.accuracy_cost_ci[0] <= cost.accuracy_cost <= cost.accuracy_cost_ci[1]
    assert m.methods["threshold_dp"].uses_sensitive_feature and not m.methods["eg_dp"].uses_sensitive_feature
    assert [p["strength"] for p in m.methods["threshold_dp"].pareto] == [0.0, 0.05, 0.2]
    statuses = {g.id: g.status for g in result.gates}
    assert statuses["mitigation.demographic_parity_ratio[sex|method=threshold_dp]"] == "pass"


def test_the_unmitigated_numbers_equal_the_fairness_auditors(run):
    _, result, _ = run
    fairness = result.auditors["fairness"].metric_values()["demographic_parity_ratio[sex]"]
    none = result.auditors["mitigation"].metric_values()["demographic_parity_ratio[sex|method=none]"]
    assert none.value == pytest.approx(fairness.value, abs=1e-12)
    assert result.auditors["mitigation"].methods["none"].accuracy == pytest.approx(
        result.auditors["performance"].metrics["accuracy"], abs=1e-12
    )


def test_mitigation_json_holds_the_fix_and_no_raw_rows(run):
    _, result, out = run
    document = json.loads((out / "mitigation.json").read_text())
    assert document["seed"] == 0 and document["data_sha256"] == result.provenance.data_sha256
    by_name = {m["name"]: m for m in document["methods"]}
    assert set(by_name) == set(METHODS)
    assert set(by_name["threshold_dp"]["groups"]) == {"female", "male"}
    assert by_name["eg_dp"]["predictor_weights"] and abs(sum(by_name["eg_dp"]["predictor_weights"]) - 1) < 1e-9
    assert "mitigation.json" in json.loads((out / ".auditkit-output").read_text())["files"]


def test_applying_the_exported_thresholds_reproduces_the_reported_numbers(run):
    folder, result, out = run
    config = mitigation_config(SKLEARN, METHODS)
    config["auditors"] = {"performance": {"n_boot": 200}, "fairness": {"n_boot": 200}}
    config["gates"] = []
    path = write_config(folder, config, "apply.yaml")
    applied, _ = run_audit(path, out=folder / "applied", apply_mitigation=str(out / "mitigation.json"),
                           mitigation_method="threshold_dp")  # fmt: skip
    reported = result.auditors["mitigation"]
    assert applied.auditors["performance"].metrics["accuracy"] == reported.methods["threshold_dp"].accuracy
    assert (
        applied.auditors["fairness"].metric_values()["demographic_parity_ratio[sex]"].value
        == reported.metric_values()["demographic_parity_ratio[sex|method=threshold_dp]"].value
    )
    assert any("mitigation.json" in note for note in applied.notes)


@pytest.mark.parametrize(
    ("model", "method", "words"),
    [
        ({"adapter": "predictions", "path": "preds.csv", "score_column": "score"}, "eg_dp",
         "exponentiated_gradient refits the model, which adapter 'predictions' cannot"),
        (SKLEARN, "eg_dp", None),
    ],
)  # fmt: skip
def test_a_method_that_cannot_apply_is_refused_at_validate(tmp_path, model, method, words):
    frame = biased_frame(200)
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.assign(score=np.linspace(0, 1, len(frame)))[["pid", "score"]].to_csv(tmp_path / "preds.csv", index=False)
    write_config(tmp_path, mitigation_config(model, {method: METHODS[method], "threshold_dp": METHODS["threshold_dp"]}))
    done = run_cli("validate", "audit.yaml", cwd=tmp_path)
    if words is None:
        assert done.returncode == 0, done.stderr
    else:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith("error: audit.yaml:")
        assert f" auditors.mitigation.methods.{method}: {words}" in lines[0]


def test_thresholds_on_a_file_of_predictions_fit_on_a_carve_out_of_the_audited_rows(tmp_path):
    frame = biased_frame(800)
    frame.to_csv(tmp_path / "data.csv", index=False)
    score = 1 / (1 + np.exp(-(frame["hours"] - 44) / 5))
    frame.assign(score=score)[["pid", "score"]].to_csv(tmp_path / "preds.csv", index=False)
    model = {"adapter": "predictions", "path": "preds.csv", "score_column": "score"}
    config = mitigation_config(model, {"threshold_dp": METHODS["threshold_dp"]})
    result, _ = run_audit(write_config(tmp_path, config), write=False)
    m = result.auditors["mitigation"]
    assert (m.n_fit, m.n_eval) == (400, 400) and "carve-out of the audited rows" in m.fitted_on
    assert m.methods["threshold_dp"].accuracy is not None  # judged on the 400 rows the fit never saw
