"""The fairness auditor through the runner: contract shape, counterfactual swaps, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.text_swaps import TextSwap
from tests.conftest import write_config

SWAPS = {
    "gender": {"pairs": [["male", "female"]]},
    "purpose": {"replace": [[r"\bholiday\b", "education"]]},
    "nothing": {"pairs": [["spaceship", "rocket"]]},
}


def configure(workspace, **fairness):
    config = yaml.safe_load((workspace / "audit.yaml").read_text())
    config["auditors"]["fairness"] = {"n_boot": 200, "min_group_size": 10, **fairness}
    write_config(workspace, config)
    return config


def run(workspace):
    out = workspace / "out"
    result = CliRunner().invoke(app, ["run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet"])
    return result, out


def test_summary_has_the_contract_shape(workspace):
    configure(workspace, intersections=[["sex", "age_group"]], counterfactual=SWAPS)
    result, out = run(workspace)
    assert result.exit_code == 0, result.stderr
    fairness = json.loads((out / "summary.json").read_text())["auditors"]["fairness"]
    assert set(fairness["by_group"]) == {"sex", "age_group", "sex*age_group"}
    group = fairness["by_group"]["sex"]["female"]
    for key in ("n", "selection_rate", "tpr", "fpr", "accuracy", "status"):
        assert key in group
    assert len(group["ci"]["selection_rate"]) == 2 and group["status"] in ("ok", "insufficient")
    assert set(fairness["by_group"]["sex*age_group"]) <= {"female*young", "female*older", "male*young", "male*older"}
    for disparity in (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equal_opportunity_difference",
    ):
        assert disparity in fairness["disparities"]["sex"]
    assert "demographic_parity_ratio" in fairness["disparities"]["sex"]["ci"]
    assert set(fairness["counterfactual"]) == set(SWAPS)


def test_counterfactual_swap_rescored_directly(trained_workspace):
    workspace = trained_workspace
    configure(workspace, counterfactual=SWAPS)
    result, out = run(workspace)
    summary = json.loads((out / "summary.json").read_text())
    swaps = summary["auditors"]["fairness"]["counterfactual"]
    predictions = {row.split(",")[0]: row for row in (out / "predictions.csv").read_text().splitlines()[1:]}
    # Every test text names a sex, so the gender swap edits all of them; the purpose swap only the holidays.
    assert swaps["gender"]["n"] == len(predictions)
    import pandas as pd

    frame = pd.read_csv(workspace / "data.csv").set_index("applicant_id")
    assert swaps["purpose"]["n"] == (frame.loc[list(predictions), "purpose"] == "holiday").sum()
    assert swaps["nothing"]["n"] == 0 and swaps["nothing"]["flip_rate"] is None and swaps["nothing"]["reason"]
    gate_ids = {"fairness.counterfactual_flip_rate[gender]", "fairness.counterfactual_mean_abs_score_change[gender]"}
    config = yaml.safe_load((workspace / "audit.yaml").read_text())
    config["gates"] = [{"metric": g, "op": "<=", "threshold": 1.0} for g in sorted(gate_ids)]
    write_config(workspace, config)
    result, out = run(workspace)
    assert result.exit_code == 0
    gates = json.loads((out / "summary.json").read_text())["gates"]
    assert {g["id"] for g in gates} == gate_ids and all(g["status"] == "pass" for g in gates)
    low, high = swaps["gender"]["ci"]["mean_abs_score_change"]
    assert low <= swaps["gender"]["mean_abs_score_change"] <= high


def test_counterfactual_flip_rate_equals_a_direct_rescoring(trained_workspace):
    from auditkit import run as run_audit

    workspace = trained_workspace
    configure(workspace, counterfactual={"gender": SWAPS["gender"]})
    result = run_audit(workspace / "audit.yaml", write=False)
    swap = result.auditors["fairness"].counterfactual["gender"]
    from auditkit.config_file import load_config
    from auditkit.data import Split
    from auditkit.progress import SILENT
    from auditkit.runner import prepare

    prepared = prepare(load_config(workspace / "audit.yaml"), SILENT)
    test = prepared.data.test
    edited = Split("x", test.frame, test.y, [TextSwap(pairs=[("male", "female")]).apply(t) for t in test.texts])
    before, after = prepared.adapter.predict(test, SILENT), prepared.adapter.predict(edited, SILENT)
    assert swap.flip_rate == pytest.approx(np.mean(before.y_pred != after.y_pred), abs=1e-12)
    assert swap.mean_abs_score_change == pytest.approx(np.mean(np.abs(after.scores - before.scores)), abs=1e-12)


def test_text_swap_keeps_case_and_whole_words():
    swap = TextSwap(pairs=[("male", "female"), ("he", "she")])
    assert (
        swap.apply("He is male; SHE is Female. The helper is a chemale.")
        == "She is female; HE is Male. The helper is a chemale."
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"intersections": [["sex", "income"]]}, "income"),
        ({"intersections": [["sex", "sex"]]}, "'sex' is named twice"),
        ({"features": ["sex", "sex"]}, "auditors.fairness.features: 'sex' is named twice"),
        ({"n_boot": 10**9}, "auditors.fairness.n_boot"),
        ({"features": ["gender"]}, "gender"),
        ({"counterfactual": {"g": {"replace": [["(unclosed", "x"]]}}}, "does not compile"),
        ({"counterfactual": {"g": {"pairs": [["he", "she"], ["she", "they"]]}}}, "only one pair"),
    ],
)
def test_bad_fairness_settings_are_user_errors(workspace, settings, message):
    configure(workspace, **settings)
    result = CliRunner().invoke(app, ["validate", str(workspace / "audit.yaml")])
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_a_reversed_intersection_suggests_the_configured_order(tmp_path):
    from auditkit.config_file import load_config
    from auditkit.errors import AuditError
    from tests.conftest import base_config

    config = base_config("d.csv", "m")
    config["auditors"]["fairness"] = {"intersections": [["sex", "age_group"]]}
    config["gates"] = [{"metric": "fairness.demographic_parity_ratio[age_group*sex]", "op": ">=", "threshold": 0.8}]
    with pytest.raises(AuditError, match=r"did you mean 'fairness.demographic_parity_ratio\[sex\*age_group\]'"):
        load_config(write_config(tmp_path, config))


def test_counterfactual_needs_text(workspace):
    config = configure(workspace, counterfactual=SWAPS)
    del config["data"]["text"]
    config["model"] = {"adapter": "torch-tabular", "path": "m", "build": {"epochs": 1}}
    write_config(workspace, config)
    result = CliRunner().invoke(app, ["validate", str(workspace / "audit.yaml")])
    assert result.exit_code == 2 and "counterfactual" in result.stderr


def test_four_fifths_rule_expands_to_a_cited_gate(workspace):
    config = configure(workspace)
    config["gates"] = [{"rule": "four_fifths", "slice": "sex"}]
    write_config(workspace, config)
    result, out = run(workspace)
    gate = json.loads((out / "summary.json").read_text())["gates"][0]
    assert gate["id"] == "fairness.demographic_parity_ratio[sex]" and gate["op"] == ">=" and gate["threshold"] == 0.8
    assert "four-fifths" in gate["source"]
    assert result.exit_code in (0, 1)


def test_a_constant_classifier_has_no_flip_rate_but_keeps_its_score_changes():
    from types import SimpleNamespace

    import pandas as pd

    from auditkit.auditors.fairness import FairnessAuditor, FairnessResult, FairnessSettings
    from auditkit.config import GateConfig
    from auditkit.data import Split
    from auditkit.gates import evaluate_gate
    from auditkit.predictions import Predictions

    texts = [f"{'He' if i % 2 else 'She'} asks for a loan of {i} euros" for i in range(40)]
    test = Split("test", pd.DataFrame(index=pd.Index([str(i) for i in range(40)])), np.zeros(40, int), texts)

    def predict(split, progress):  # always the positive label; the score moves with "she"
        scores = np.array([0.9 if "she" in t.lower().split() else 0.8 for t in split.texts])
        return Predictions(split.frame.index.to_numpy(), split.y, scores, np.ones(len(split), int))

    context = SimpleNamespace(
        data=SimpleNamespace(test=test),
        adapter=SimpleNamespace(predict=predict),
        progress=None,
        predictions=lambda split: predict(test, None),
        predictions_of=lambda kind, split="test": predict(test, None),
    )
    flip_gate = GateConfig(metric="fairness.counterfactual_flip_rate[gender]", op="<=", threshold=0.05)
    auditor = FairnessAuditor(FairnessSettings(n_boot=100))
    swap = auditor._swap(context, TextSwap(pairs=[("he", "she")]), np.random.default_rng(0))
    assert swap.n == 40 and swap.flip_rate is None and swap.ci["flip_rate"] is None
    assert "constant classifier" in swap.flip_rate_reason
    assert swap.mean_abs_score_change == pytest.approx(0.1)  # every text's score moved by 0.1
    result = FairnessResult.model_construct(
        disparities={}, by_group={}, accuracy_disparities={}, counterfactual={"gender": swap}
    )
    values = result.metric_values()
    assert evaluate_gate(flip_gate, values["counterfactual_flip_rate[gender]"]).status == "inconclusive"
    assert values["counterfactual_mean_abs_score_change[gender]"].value == pytest.approx(0.1)
