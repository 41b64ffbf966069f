"""The predictions adapter: another system's scores audited with no model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from auditkit.cli import app
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
    assert code == 2 and "outside [0, 1]" in line and "r3" in line and len(line.splitlines()) == 1
    data = write_table(folder, frame, "data.csv")
    partial = write_table(folder, frame.iloc[:-1].drop(columns=["sex", "age_group", "y_true"]), "partial.csv")
    config = predictions_config(data)
    config["model"]["path"] = partial
    write_config(folder, config)
    done = run_cli("run", "audit.yaml", "--out", "out", "--quiet", cwd=folder)
    assert done.returncode == 2 and "1 of 80 data rows have no prediction (first ids 'r79')" in done.stderr
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


def check(folder, config) -> tuple[int, str]:
    """``validate`` in this process (a subprocess per case costs seconds of imports)."""
    done = CliRunner().invoke(app, ["validate", str(write_config(folder, config))])
    return done.exit_code, done.stderr.strip()


def joined(folder, data: pd.DataFrame, predictions: pd.DataFrame, **model) -> dict:
    """An audit of data.csv whose predictions come from p.csv (ids, scores), joined by id."""
    config = predictions_config(write_table(folder, data, "data.csv"), **model)
    config["model"]["path"] = write_table(folder, predictions, "p.csv")
    return config


def test_ids_without_a_partner_are_counted_over_the_whole_file_at_validate(table):
    """validate used to count its 2-row sample ("2 of 2 data rows have none") and to drop extra predictions."""
    folder, frame = table
    scores = frame[["id", "score"]]
    code, line = check(folder, joined(folder, frame, scores.iloc[:-3]))
    assert code == 2 and len(line.splitlines()) == 1
    assert "3 of 80 data rows have no prediction (first ids 'r77', 'r78', 'r79')" in line
    assert "model.max_unmatched_share" in line
    extra = pd.concat([scores, pd.DataFrame({"id": [f"x{i}" for i in range(5)], "score": 0.5})])
    code, line = check(folder, joined(folder, frame, extra))
    assert code == 2 and "5 of 85 predictions have no data row (first ids 'x0', 'x1', 'x2', ...)" in line


def test_max_unmatched_share_leaves_rows_out_and_says_so(table):
    folder, frame = table
    scores = pd.concat([frame[["id", "score"]].iloc[:-3], pd.DataFrame({"id": ["x0", "x1"], "score": 0.5})])
    code, line = check(folder, joined(folder, frame, scores, max_unmatched_share=0.03))  # 3 of 80 is 0.0375
    assert code == 2 and "3 of 80 data rows have no prediction" in line and "(now 0.03)" in line
    config = joined(folder, frame, scores, max_unmatched_share=0.05)
    done = CliRunner().invoke(app, ["validate", str(write_config(folder, config))])
    assert done.exit_code == 0, done.stderr
    note = (
        "Predictions joined to the data by id: 3 of 80 data rows have no prediction (first ids 'r77', 'r78', "
        "'r79'), left out of the audit; 2 of 79 predictions have no data row (first ids 'x0', 'x1'), ignored "
        "(model.max_unmatched_share 0.05)."
    )
    assert f"model: {note}" in done.stdout
    result, out = run_audit(write_config(folder, config), out=folder / "out")
    assert list(result.predictions.ids) == list(frame["id"].iloc[:-3])
    assert result.auditors["performance"].metrics["n"] == 77
    assert note in result.notes
    assert "3 of 80 data rows have no prediction" in (out / "report.html").read_text(encoding="utf-8")


def test_a_file_that_matches_nothing_is_refused_even_when_all_may_be_unmatched(table):
    folder, frame = table
    other = frame[["id", "score"]].assign(id=[f"z{i}" for i in range(len(frame))])
    code, line = check(folder, joined(folder, frame, other, max_unmatched_share=1))
    assert code == 2 and "no data row has a prediction (first data ids 'r0', 'r1', 'r2', ...)" in line


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda p: p.iloc[:0], ["p.csv", "has columns but no rows"]),
        (lambda p: pd.concat([p, p.iloc[[5]]]), ["id column 'id' repeats 'r5'"]),
        (lambda p: p.assign(id=p["id"].where(p.index != 4)), ["id column 'id' is empty in 1 rows", "row 5"]),
        (lambda p: p.assign(score=p["score"].where(p.index != 4)), ["'score' holds missing (NaN)", "id r4"]),
        (lambda p: p.assign(score=p["score"].mask(p.index == 4, -0.5)), ["outside [0, 1]", "min -0.5", "id r4"]),
        (lambda p: p.assign(score=p["score"].astype(object).mask(p.index == 4, "high")), ["'high' (id r4)"]),
    ],
    ids=["header only", "duplicate id", "empty id", "NaN score", "negative score", "text score"],
)
def test_unusable_prediction_files_are_one_line_errors(table, change, words):
    folder, frame = table
    code, line = check(folder, joined(folder, frame, change(frame[["id", "score"]])))
    assert code == 2 and line.startswith("error:") and len(line.splitlines()) == 1
    for word in words:
        assert word in line


def test_max_unmatched_share_is_refused_for_a_streamed_audit(tmp_path, table):
    """A streamed audit reads the predictions from the data's own rows: it joins nothing to allow for."""
    _, frame = table
    frame.to_parquet(tmp_path / "d.parquet")
    config = predictions_config("d.parquet", max_unmatched_share=0.1)
    config["data"]["streaming"] = True
    code, line = check(tmp_path, config)
    assert code == 2 and "model.max_unmatched_share" in line and "streamed" in line


def test_predictions_csv_guards_formulas_and_reads_back_exactly(table):
    """Ids and group names that a spreadsheet would run as formulas get a leading quote in
    predictions.csv, and the file read back as data and predictions gives the same sections."""
    folder, frame = table
    hostile = ['=HYPERLINK("http://x.example","y")', "+1", "-2", "@SUM(A1)", "'quoted", "'=both"]
    frame = frame.assign(
        id=[hostile[i % len(hostile)] + f"#{i}" for i in range(len(frame))],
        sex=np.where(frame["sex"] == "f", "=f", "-m"),
    )
    name = write_table(folder, frame, "p.csv")
    first, out = run_audit(write_config(folder, predictions_config(name)), out=folder / "first")
    cells = [line.split(",")[0] for line in (out / "predictions.csv").read_text().splitlines()[1:]]
    assert all(cell.startswith(("'", '"\'')) for cell in cells), cells[:6]
    assert (pd.read_csv(out / "predictions.csv")["sex"].isin(["'=f", "'-m"])).all()
    again, replay = run_audit(write_config(folder, predictions_config("first/predictions.csv"), "replay.yaml"),
                              out=folder / "replay")
    # the documented reading rule: a leading ' before a formula character is a guard, and is removed
    assert list(again.predictions.ids) == list(first.predictions.ids) == [i.replace("'=", "=") for i in frame["id"]]
    original = json.loads((out / "summary.json").read_text())["auditors"]
    assert json.loads((replay / "summary.json").read_text())["auditors"] == original


def test_ids_are_text_so_leading_zeros_are_not_lost(table):
    """"007" and "7" are two ids: matched as numbers, every row would pair with the wrong prediction."""
    folder, frame = table
    data = frame.assign(id=[f"{i:03d}" for i in range(len(frame))])
    write_table(folder, data, "data.csv")
    write_table(folder, data.assign(id=[str(i) for i in range(len(frame))]), "p.csv")
    config = predictions_config("data.csv")
    config["model"]["path"] = "p.csv"
    code, err = validate(folder, config)
    assert code == 2 and "data rows have no prediction (first ids '000', '001', '002'" in err
    write_table(folder, data, "p.csv")
    result, _ = run_audit(write_config(folder, config), write=False)
    assert list(result.predictions.ids) == list(data["id"])
