"""Multiclass: per-class and macro/micro performance equal scikit-learn's, one-vs-rest fairness equals
fairlearn's, class-qualified gate ids parse and evaluate, and the outputs carry one score per class."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy.special import softmax
from sklearn import metrics as skm
from typer.testing import CliRunner

from auditkit.auditors.performance_multiclass import multiclass_performance
from auditkit.cli import app
from auditkit.predictions import Predictions
from auditkit.stats.groups import GroupRules, group_metrics_by_class
from tests.conftest import write_config

CLASSES = ["low", "medium", "high"]


def random_predictions(n: int = 500, k: int = 3, seed: int = 1) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    probabilities = softmax(logits, axis=1)
    return Predictions(np.arange(n).astype(str), y, probabilities, probabilities.argmax(axis=1), classes=CLASSES)


def test_performance_equals_scikit_learn():
    p = random_predictions()
    result = multiclass_performance(p, 200, 0.95, np.random.default_rng(0))
    y, y_pred = p.y_true, p.y_pred
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, y_pred, labels=[0, 1, 2])
    for c, name in enumerate(CLASSES):
        entry = result.per_class[name]
        assert entry["precision"] == pytest.approx(precision[c], abs=1e-12)
        assert entry["recall"] == pytest.approx(recall[c], abs=1e-12)
        assert entry["f1"] == pytest.approx(f1[c], abs=1e-12)
        assert entry["support"] == support[c]
        assert entry["roc_auc"] == pytest.approx(skm.roc_auc_score(y == c, p.probabilities[:, c]), abs=1e-12)
        low, high = entry["ci"]["f1"]
        assert low <= entry["f1"] <= high
    m = result.metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, y_pred), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, y_pred), abs=1e-12)
    for average in ("macro", "micro"):
        assert m[f"{average}_f1"] == pytest.approx(skm.f1_score(y, y_pred, average=average), abs=1e-12)
        assert m[f"{average}_precision"] == pytest.approx(skm.precision_score(y, y_pred, average=average), abs=1e-12)
        assert m[f"{average}_recall"] == pytest.approx(skm.recall_score(y, y_pred, average=average), abs=1e-12)
    assert m["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p.probabilities, multi_class="ovr"), abs=1e-12)
    low, high = result.ci["macro_roc_auc"]
    assert low < m["macro_roc_auc"] < high
    assert sum(sum(row.values()) for row in result.confusion_matrix.values()) == len(y)
    assert result.confusion_matrix["low"]["medium"] == int(((y == 0) & (y_pred == 1)).sum())
    values = result.metric_values()
    assert values["f1[class=medium]"].value == pytest.approx(f1[1], abs=1e-12)
    assert values["macro_f1"].ci is not None


def test_a_class_never_predicted_is_null_with_a_reason():
    p = random_predictions()
    y_pred = np.where(p.y_pred == 2, 1, p.y_pred)  # "high" is never predicted
    p = Predictions(p.ids, p.y_true, p.probabilities, y_pred, classes=CLASSES)
    result = multiclass_performance(p, 100, 0.95, np.random.default_rng(0))
    assert result.per_class["high"]["precision"] is None and result.per_class["high"]["precision_reason"]
    assert result.metrics["macro_precision"] is None and result.metrics["macro_precision_reason"]
    assert result.metric_values()["macro_precision"].value is None
    assert result.per_class["high"]["f1"] == pytest.approx(0.0)  # 2tp / (2tp + fp + fn) with tp = 0, fn > 0


def test_one_vs_rest_fairness_equals_fairlearn():
    p = random_predictions(n=900)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"sex": rng.choice(["female", "male"], len(p)), "race": rng.choice(["a", "b", "c"], len(p))})
    rules = GroupRules(min_group_size=1, min_class_size=1, n_boot=100)
    reports, accuracy = group_metrics_by_class(
        p.y_true, p.y_pred, p.probabilities, CLASSES, frame, [["sex"], ["race"]], rules, np.random.default_rng(0)
    )
    assert set(reports) == {f"{s}|class={c}" for s in ("sex", "race") for c in CLASSES}
    for c, name in enumerate(CLASSES):
        y, y_pred = (p.y_true == c).astype(int), (p.y_pred == c).astype(int)
        for feature in ("sex", "race"):
            report = reports[f"{feature}|class={name}"]
            mf = MetricFrame(
                metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
                y_true=y,
                y_pred=y_pred,
                sensitive_features=frame[feature],
            )
            for group, row in mf.by_group.iterrows():
                for rate in ("selection_rate", "tpr", "fpr"):
                    assert report.groups[group].rates[rate].value == pytest.approx(row[rate], abs=1e-9)
            kwargs = {"sensitive_features": frame[feature]}
            d = report.disparities
            assert d["demographic_parity_ratio"].value == pytest.approx(
                demographic_parity_ratio(y, y_pred, **kwargs), abs=1e-9
            )
            assert d["demographic_parity_difference"].value == pytest.approx(
                demographic_parity_difference(y, y_pred, **kwargs), abs=1e-9
            )
            assert d["equalized_odds_difference"].value == pytest.approx(
                equalized_odds_difference(y, y_pred, **kwargs), abs=1e-9
            )
            assert d["demographic_parity_ratio"].ci is not None
    correct = (p.y_true == p.y_pred).astype(float)
    by_sex = pd.Series(correct).groupby(frame["sex"]).mean()
    for group, value in by_sex.items():
        assert accuracy["sex"].groups[group].rates["accuracy"].value == pytest.approx(value, abs=1e-12)
    assert accuracy["sex"].disparities["accuracy_difference"].value == pytest.approx(
        by_sex.max() - by_sex.min(), abs=1e-12
    )


# --- end to end: a torch-tabular model built with three outputs ---------------------------------------


def make_multiclass_frame(n: int = 450, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n, p=[0.6, 0.4])
    priors = rng.poisson(2.0, n)
    age = rng.integers(18, 70, n)
    latent = priors - (age - 40) / 15 + rng.normal(0, 1.0, n)
    risk = np.where(latent < 1.0, "low", np.where(latent < 3.0, "medium", "high"))
    return pd.DataFrame(
        {"person": [f"P{i:04d}" for i in range(n)], "sex": sex, "priors": priors, "age": age, "risk": risk}
    )


def multiclass_config(model_path: str, **auditors) -> dict:
    return {
        "name": "tiny_multiclass",
        "seed": 0,
        "data": {
            "path": "data.csv",
            "task": "multiclass",
            "label": "risk",
            "classes": CLASSES,
            "id_column": "person",
            "sensitive_features": ["sex"],
            "split": {"test_size": 0.4, "stratify": ["sex"]},
        },
        "model": {
            "adapter": "torch-tabular",
            "path": model_path,
            "build": {"features": ["priors", "age", "sex"], "hidden_sizes": [16], "epochs": 30},
        },
        "auditors": {
            "performance": {"n_boot": 200},
            "fairness": {"n_boot": 200, "min_group_size": 10, "min_class_size": 5},
            **auditors,
        },
        "gates": [
            {"metric": "performance.macro_f1", "op": ">=", "threshold": 0.0},
            {"metric": "performance.f1[class=medium]", "op": ">=", "threshold": 0.0},
            {"metric": "performance.recall[class=high]", "op": ">=", "threshold": 1.01},
            {"metric": "fairness.demographic_parity_ratio[sex|class=high]", "op": ">=", "threshold": 0.0},
            {"metric": "fairness.accuracy_difference[sex]", "op": "<=", "threshold": 1.0},
        ],
    }


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiclass")
    make_multiclass_frame().to_csv(folder / "data.csv", index=False)
    write_config(folder, multiclass_config(str(folder / "model")))
    out = folder / "out"
    result = CliRunner().invoke(app, ["run", str(folder / "audit.yaml"), "--out", str(out), "--quiet"])
    return folder, out, result


def test_run_writes_per_class_outputs(multiclass_run):
    folder, out, result = multiclass_run
    assert result.exit_code == 1, result.stderr  # the recall gate above 1 must fail
    summary = json.loads((out / "summary.json").read_text())
    gates = {g["id"]: g for g in summary["gates"]}
    assert gates["performance.recall[class=high]"]["status"] == "fail"
    assert gates["performance.macro_f1"]["status"] == "pass"
    assert gates["fairness.demographic_parity_ratio[sex|class=high]"]["value"] is not None
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["id", "y_true", "y_pred", "score_low", "score_medium", "score_high", "sex"]
    scores = predictions[["score_low", "score_medium", "score_high"]].to_numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)
    y = predictions["y_true"].map(CLASSES.index).to_numpy()
    y_pred = predictions["y_pred"].map(CLASSES.index).to_numpy()
    assert (y_pred == scores.argmax(axis=1)).all()
    performance = summary["auditors"]["performance"]
    assert performance["task"] == "multiclass" and performance["classes"] == CLASSES
    f1 = skm.f1_score(y, y_pred, labels=[0, 1, 2], average=None)
    for c, name in enumerate(CLASSES):
        assert performance["per_class"][name]["f1"] == pytest.approx(f1[c], abs=1e-12)
    assert performance["metrics"]["macro_roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, scores, multi_class="ovr"), abs=1e-9
    )
    fairness = summary["auditors"]["fairness"]
    for c, name in enumerate(CLASSES):
        ovr_true, ovr_pred = (y == c).astype(int), (y_pred == c).astype(int)
        expected = demographic_parity_ratio(ovr_true, ovr_pred, sensitive_features=predictions["sex"])
        assert fairness["disparities"][f"sex|class={name}"]["demographic_parity_ratio"] == pytest.approx(
            expected, abs=1e-9
        )
    html = (out / "report.html").read_text()
    assert "Per-class metrics" in html and "sex|class=high" in html
    assert "score_medium" not in (out / "summary.md").read_text()


def test_class_gate_ids_are_checked_at_load(tmp_path):
    make_multiclass_frame(120).to_csv(tmp_path / "data.csv", index=False)
    config = multiclass_config(str(tmp_path / "model"))
    config["gates"] = [{"metric": "performance.f1[class=severe]", "op": ">=", "threshold": 0.5}]
    write_config(tmp_path, config)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "audit.yaml")])
    assert result.exit_code == 2 and "unknown metric 'performance.f1[class=severe]'" in result.stderr
    config["gates"] = [{"metric": "fairness.demographic_parity_ratio[sex|class=low]", "op": ">=", "threshold": 0.8}]
    del config["data"]["classes"]
    write_config(tmp_path, config)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "audit.yaml")])
    assert result.exit_code == 2 and "data.classes" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"positive_label": "high"}, "positive_label and negative_label are for task: binary"),
        ({"classes": ["low", "high"]}, "at least 3 classes"),
        ({"classes": ["low", "medium"] + ["low"]}, "repeats"),
    ],
)
def test_bad_multiclass_data_sections(tmp_path, change, message):
    make_multiclass_frame(120).to_csv(tmp_path / "data.csv", index=False)
    config = multiclass_config(str(tmp_path / "model"))
    config["data"].update(change)
    write_config(tmp_path, config)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "audit.yaml")])
    assert result.exit_code == 2 and result.stderr.startswith("error:") and message in result.stderr


def test_label_values_outside_the_classes_are_refused(tmp_path):
    frame = make_multiclass_frame(120)
    frame.loc[3, "risk"] = "extreme"
    frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path, multiclass_config(str(tmp_path / "model")))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "audit.yaml")])
    assert result.exit_code == 2 and "'extreme'" in result.stderr and "data.classes" in result.stderr


def test_binary_configs_still_need_both_labels(tmp_path):
    make_multiclass_frame(120).to_csv(tmp_path / "data.csv", index=False)
    config = multiclass_config(str(tmp_path / "model"))
    config["data"] = {**config["data"], "task": "binary", "classes": None, "positive_label": "high"}
    config["gates"] = []
    write_config(tmp_path, yaml.safe_load(yaml.safe_dump(config)))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "audit.yaml")])
    assert result.exit_code == 2 and "negative_label" in result.stderr


def test_explain_and_privacy_on_k_outputs(tmp_path):
    from opacus.accountants import RDPAccountant

    make_multiclass_frame(300).to_csv(tmp_path / "data.csv", index=False)
    config = multiclass_config(
        "model",
        explain={"n_examples": 12, "target": "high", "max_steps": 128, "n_boot": 100},
        privacy={"epsilons": [2.0], "epochs": 3, "n_boot": 100, "min_group_size": 10},
    )
    del config["auditors"]["fairness"]
    config["gates"] = [{"metric": "privacy.mia_auc[audited]", "op": "<=", "threshold": 1.0}]
    write_config(tmp_path, config)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "audit.yaml"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())["auditors"]
    records = [json.loads(line) for line in (out / "attributions.jsonl").read_text().splitlines()]
    assert records and all(r["target"] == CLASSES.index("high") for r in records)  # torch-tabular: outputs = classes
    for r in records:  # completeness: the scores add up to F(x) - F(baseline) for the "high" logit
        total = sum(t["score"] for t in r["tokens"])
        assert total == pytest.approx(r["f_input"] - r["f_baseline"], abs=0.02 * max(1.0, abs(total)))
    assert summary["explain"]["target"] == "high"
    run = summary["privacy"]["runs"][0]
    reference = RDPAccountant()
    reference.history = [(run["noise_multiplier"], run["sample_rate"], run["steps"])]
    assert run["epsilon"] == pytest.approx(reference.get_epsilon(run["delta"]), rel=1e-6)
    assert set(run["metrics"]) >= {"accuracy", "balanced_accuracy", "macro_f1"}
    assert set(run["by_group"]["sex"]["female"]) == {"accuracy"}
    assert 0 <= run["mia"]["auc"] <= 1 and 0 <= summary["privacy"]["audited_model"]["mia"]["auc"] <= 1


def test_explain_target_must_name_a_class(tmp_path):
    make_multiclass_frame(120).to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path, multiclass_config("model", explain={"target": "positive"}))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "audit.yaml")])
    assert result.exit_code == 2 and "auditors.explain.target" in result.stderr


def test_hf_text_fills_k_class_probabilities_in_class_order(tmp_path):
    from auditkit.adapters.hf_text import HfTextAdapter
    from auditkit.config import DataConfig
    from auditkit.data import load_data
    from auditkit.progress import ProgressReporter
    from tests.conftest import make_tiny_bert

    frame = make_multiclass_frame(90)
    frame["text"] = [
        f"{s} with {p} priors aged {a}" for s, p, a in zip(frame.sex, frame.priors, frame.age, strict=True)
    ]
    frame.to_csv(tmp_path / "data.csv", index=False)
    folder = make_tiny_bert(tmp_path / "bert", frame["text"].tolist(), num_labels=3)
    from transformers import AutoConfig

    stored = AutoConfig.from_pretrained(folder)
    stored.id2label, stored.label2id = {0: "high", 1: "low", 2: "medium"}, {"high": 0, "low": 1, "medium": 2}
    stored.save_pretrained(folder)
    data_config = DataConfig(
        path=tmp_path / "data.csv", task="multiclass", label="risk", classes=CLASSES, id_column="person",
        text={"column": "text"},
    )  # fmt: skip
    data = load_data(data_config, seed=0)
    adapter = HfTextAdapter.load(HfTextAdapter.Config(adapter="hf-text", path=folder), data_config)
    p = adapter.predict(data.test, ProgressReporter(enabled=False))
    assert p.probabilities.shape == (len(data.test), 3) and p.classes == tuple(CLASSES)
    expected = softmax(p.logits, axis=1)[:, [1, 2, 0]]  # low, medium, high from the model's high, low, medium
    np.testing.assert_allclose(p.probabilities, expected, atol=1e-12)
    assert (p.y_pred == expected.argmax(axis=1)).all()
    assert adapter.output_index(np.array([0, 1, 2])).tolist() == [1, 2, 0]
