"""The predictions adapter: another system's scores audited with no model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from auditkit.runner import run_audit
from tests.conftest import base_config, run_cli, write_config

FAIRNESS = {"n_boot": 200, "min_group_size": 5, "min_class_size": 1, "intersections": [["sex", "age_group"]]}
GATE = {"metric": "fairness.demographic_parity_ratio[sex]", "op": ">=", "threshold": 0.0, "source": "smoke"}


def predictions_config(predictions: str, **model) -> dict:
    """An audit whose data is a predictions.csv written by auditkit (label y_true in 0/1)."""
    return {
        "name": "from_predictions",
        "seed": 0,
        "data": {
            "path": predictions,
            "label": "y_true",
            "positive_label": 1,
            "negative_label": 0,
            "id_column": "id",
            "sensitive_features": ["sex", "age_group"],
        },
        "model": {"adapter": "predictions", "path": predictions, "score_column": "score", **model},
        "auditors": {"performance": {"n_boot": 200}, "fairness": FAIRNESS},
        "gates": [GATE],
    }


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory, credit_frame, trained_tiny_bert):
    """A tiny hf-text audit: performance and fairness on its test split, with its predictions.csv."""
    folder = tmp_path_factory.mktemp("hf_run")
    credit_frame.to_csv(folder / "data.csv", index=False)
    config = base_config("data.csv", str(trained_tiny_bert))
    config["auditors"] = {"performance": {"n_boot": 200}, "fairness": FAIRNESS}
    config["gates"] = [GATE]
    result, out = run_audit(write_config(folder, config), out=folder / "out")
    assert 0 < result.predictions.y_pred.sum() < len(result.predictions)  # a model that discriminates
    return folder, out


@pytest.mark.parametrize("predicted", [None, "y_pred"])
def test_reproduces_the_hf_text_runs_performance_and_fairness_exactly(hf_run, predicted):
    folder, out = hf_run
    model = {"predicted_column": predicted} if predicted else {}
    config = write_config(folder, predictions_config("out/predictions.csv", **model), "from_predictions.yaml")
    result, replay = run_audit(config, out=folder / f"replay-{predicted}")
    original = json.loads((out / "summary.json").read_text())["auditors"]
    again = json.loads((replay / "summary.json").read_text())["auditors"]
    assert again["performance"] == original["performance"]
    assert again["fairness"] == original["fairness"]
    assert len(result.predictions) == original["performance"]["metrics"]["n"]  # no split: every row audited


def test_baseline_gates_work_on_predictions(hf_run):
    folder, out = hf_run
    config = write_config(folder, predictions_config("out/predictions.csv"), "baseline.yaml")
    baseline = ("--baseline", str(out / "summary.json"), "--baseline-any")  # another audit name and data file
    done = run_cli("run", str(config), "--out", str(folder / "b"), *baseline, "--quiet")
    assert done.returncode == 0, done.stderr
    gates = json.loads((folder / "b" / "summary.json").read_text())["gates"]
    assert gates[0]["baseline"]["method"] == "paired bootstrap" and gates[0]["baseline"]["worsening"] == 0


@pytest.mark.parametrize(
    ("auditor", "words"),
    [("explain", ["explain", "'predictions'", "attribute", "no model"]), ("privacy", ["privacy", "retrain"])],
)
def test_model_needing_auditors_are_refused_at_validate(hf_run, auditor, words):
    folder, _ = hf_run
    config = predictions_config("out/predictions.csv")
    config["auditors"][auditor] = {}
    write_config(folder, config, f"refused-{auditor}.yaml")
    done = run_cli("validate", f"refused-{auditor}.yaml", cwd=folder)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith("error:") and len(line.splitlines()) == 1
    for word in words:
        assert word in line


def write_table(folder, frame: pd.DataFrame, name: str) -> str:
    frame.to_csv(folder / name, index=False)
    return name


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 80
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "y_true": rng.integers(0, 2, n),
            "score": rng.random(n),
            "sex": rng.choice(["f", "m"], n),
            "age_group": rng.choice(["young", "older"], n),
        }
    )
    frame["decision"] = np.where(frame["score"] >= 0.7, 1, 0)
    return tmp_path, frame


def validate(folder, config) -> tuple[int, str]:
    write_config(folder, config)
    done = run_cli("validate", "audit.yaml", cwd=folder)
    return done.returncode, done.stderr.strip()


def test_threshold_and_predicted_labels(table):
    folder, frame = table
    name = write_table(folder, frame, "p.csv")
    result, _ = run_audit(write_config(folder, predictions_config(name, threshold=0.7)), write=False)
    assert (result.predictions.y_pred == frame["decision"].to_numpy()).all()
    labels_only = predictions_config(name, predicted_column="decision")
    del labels_only["model"]["score_column"]
    result, _ = run_audit(write_config(folder, labels_only), write=False)
    assert (result.predictions.y_pred == frame["decision"].to_numpy()).all()
    assert result.auditors["performance"].metrics["accuracy"] == pytest.approx(
        float((frame["decision"] == frame["y_true"]).mean())
    )


def test_bad_prediction_files_are_one_line_errors(table):
    folder, frame = table
    bad = frame.copy()
    bad.loc[3, "score"] = 1.5
    code, line = validate(folder, predictions_config(write_table(folder, bad, "bad.csv")))
    assert code == 2 and "not a probability" in line and "r3" in line and len(line.splitlines()) == 1
    data = write_table(folder, frame, "data.csv")
    partial = write_table(folder, frame.iloc[:-1].drop(columns=["sex", "age_group", "y_true"]), "partial.csv")
    config = predictions_config(data)
    config["model"]["path"] = partial
    write_config(folder, config)
    done = run_cli("run", "audit.yaml", "--out", "out", "--quiet", cwd=folder)  # validate scores only 2 rows
    assert done.returncode == 2 and "no prediction for id 'r79'" in done.stderr
    config = predictions_config(data, predicted_column="nope")
    code, line = validate(folder, config)
    assert code == 2 and "'nope'" in line and "model.predicted_column" in line
    config = predictions_config(data)
    del config["model"]["score_column"]
    code, line = validate(folder, config)
    assert code == 2 and "score_column" in line


def test_a_multiclass_task_is_refused_in_one_line(table):
    folder, frame = table
    config = predictions_config(write_table(folder, frame.assign(y_true=frame["y_true"] + frame["decision"]), "p.csv"))
    config["data"].pop("positive_label"), config["data"].pop("negative_label")
    config["data"].update(task="multiclass", classes=["0", "1", "2"])
    config["gates"] = []
    code, line = validate(folder, config)
    assert code == 2 and line.startswith("error: data.task") and "binary" in line and len(line.splitlines()) == 1
