"""The shipped Adult audits (sklearn, onnx) and the credit predictions replay, end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fairlearn import metrics as flm

from tests.conftest import ROOT, run_cli

TOL = 1e-9


def shipped(tmp_path, name: str, explain_examples: int = 8) -> str:
    config = yaml.safe_load((ROOT / "audits" / name).read_text())
    config["data"]["path"] = str(ROOT / "audits" / config["data"]["path"])
    config["model"]["path"] = str(tmp_path / f"model-{name.removesuffix('.yaml')}")
    if "explain" in config["auditors"]:
        config["auditors"]["explain"]["n_examples"] = explain_examples
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def adult(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adult")
    outs = {}
    for name in ("adult_sklearn.yaml", "adult_onnx.yaml"):
        out = tmp / name.removesuffix(".yaml")
        done = run_cli("run", shipped(tmp, name), "--out", str(out), "--quiet")
        assert done.returncode in (0, 1), done.stderr  # the four-fifths gate on sex fails on Adult
        outs[name] = out
    return outs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adult_sklearn.yaml", "adult_onnx.yaml"])
def test_adult_fairness_equals_fairlearn(adult, name):
    out = adult[name]
    predictions = pd.read_csv(out / "predictions.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["auditors"]["performance"]["metrics"]["n"] == 3000
    assert summary["auditors"]["performance"]["metrics"]["roc_auc"] > 0.85
    assert summary["auditors"]["explain"]["method"] == "shapley_value_sampling"
    fairness = summary["auditors"]["fairness"]
    y, pred = predictions["y_true"].to_numpy(), predictions["y_pred"].to_numpy()
    sensitive = predictions["sex"]
    frame = flm.MetricFrame(
        metrics={"selection_rate": flm.selection_rate, "tpr": flm.true_positive_rate, "fpr": flm.false_positive_rate},
        y_true=y,
        y_pred=pred,
        sensitive_features=sensitive,
    )
    for group, row in frame.by_group.iterrows():
        for rate in ("selection_rate", "tpr", "fpr"):
            assert fairness["by_group"]["sex"][group][rate] == pytest.approx(row[rate], abs=TOL)
    ratio = flm.demographic_parity_ratio(y, pred, sensitive_features=sensitive)
    assert fairness["disparities"]["sex"]["demographic_parity_ratio"] == pytest.approx(ratio, abs=TOL)
    gate = next(g for g in summary["gates"] if g["id"] == "fairness.demographic_parity_ratio[sex]")
    assert gate["value"] == pytest.approx(ratio, abs=TOL)
    if gate["ci"][1] < 0.8:  # the whole interval below four-fifths
        assert gate["status"] == "fail"


@pytest.mark.slow
def test_adult_sklearn_and_onnx_agree(adult):
    a = pd.read_csv(adult["adult_sklearn.yaml"] / "predictions.csv")
    b = pd.read_csv(adult["adult_onnx.yaml"] / "predictions.csv")
    assert (a["id"] == b["id"]).all()
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)


@pytest.mark.slow
def test_credit_predictions_replay_reproduces_the_credit_run(tmp_path):
    """The committed credit run's predictions.csv audited alone gives its performance and fairness."""
    out = tmp_path / "replay"
    done = run_cli("run", str(ROOT / "audits" / "credit_predictions.yaml"), "--out", str(out), "--quiet")
    assert done.returncode in (0, 1), done.stderr
    again = json.loads((out / "summary.json").read_text())["auditors"]
    original = json.loads((ROOT / "audits" / "baselines" / "credit_risk" / "summary.json").read_text())["auditors"]
    assert again["performance"] == original["performance"]
    # Every number equal; the committed baseline predates some explanatory *_reason notes.
    assert numbers(again["fairness"], skip={"counterfactual"}) == numbers(original["fairness"], skip={"counterfactual"})


def numbers(tree, skip=frozenset()):
    if isinstance(tree, dict):
        return {k: numbers(v) for k, v in tree.items() if k not in skip and not k.endswith("_reason")}
    if isinstance(tree, list):
        return [numbers(v) for v in tree]
    return tree


@pytest.mark.slow
def test_adult_mitigation_fixes_four_fifths_on_held_out_rows_and_the_export_reproduces_it(tmp_path):
    """The shipped mitigation audit: the unmitigated model fails four-fifths on sex, a fix passes it with
    its interval, and its mitigation.json applied to the same test rows gives the reported numbers."""
    config = shipped(tmp_path, "adult_mitigation.yaml")
    out = tmp_path / "mitigation"
    done = run_cli("run", config, "--out", str(out), "--quiet")
    assert done.returncode == 1, done.stderr  # the unmitigated model's four-fifths gate fails
    summary = json.loads((out / "summary.json").read_text())
    status = {g["id"]: g["status"] for g in summary["gates"]}
    assert status["fairness.demographic_parity_ratio[sex]"] == "fail"
    assert status["mitigation.demographic_parity_ratio[sex|method=threshold_dp]"] == "pass"
    assert status["mitigation.accuracy_cost[method=threshold_dp]"] == "pass"
    methods = summary["auditors"]["mitigation"]["methods"]
    assert all(m["accuracy_ci"] and m["disparities"]["ci"]["demographic_parity_ratio"] for m in methods.values())
    applied = tmp_path / "applied"
    done = run_cli(
        "run", config, "--only", "performance,fairness", "--apply-mitigation", str(out / "mitigation.json"),
        "--mitigation-method", "threshold_dp", "--out", str(applied), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = json.loads((applied / "summary.json").read_text())["auditors"]
    assert again["performance"]["metrics"]["accuracy"] == methods["threshold_dp"]["accuracy"]
    ratio = again["fairness"]["disparities"]["sex"]["demographic_parity_ratio"]
    assert ratio == methods["threshold_dp"]["disparities"]["demographic_parity_ratio"]
