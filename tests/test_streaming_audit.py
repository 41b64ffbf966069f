"""A streamed audit (``data.streaming``): performance and fairness from counts of a Parquet folder,
against the in-memory audit of the same rows, fairlearn and scikit-learn; no row is ever loaded;
bad files are one error line naming the file and the column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_score, roc_auc_score

import auditkit.streaming.counts as counts_module
from auditkit.errors import AuditError
from auditkit.runner import run_audit, validate_config
from tests.conftest import run_cli, write_config

N = 20_000
FEATURES = ["sex", "region"]


def make_frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Two sensitive features, one of them numbers; region 4 is small, so some cells are left out."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    region = rng.choice([1, 2, 3, 4], n, p=[0.5, 0.3, 0.198, 0.002])
    y = rng.random(n) < np.where(sex == "male", 0.4, 0.3)
    score = 1 / (1 + np.exp(-(1.5 * (y - 0.5) + 0.3 * (region == 2) + rng.normal(0, 1, n))))
    label = np.where(y, "good", "bad")
    return pd.DataFrame({"id": np.arange(n), "sex": sex, "region": region, "label": label, "score": score})


def write_parts(frame: pd.DataFrame, folder, parts: int = 3, dictionary_first: bool = True):
    """A folder of Parquet files, the first with ``sex`` dictionary-encoded (as pandas writes categoricals)."""
    folder.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        table = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False)
        if k == 0 and dictionary_first and "sex" in table.column_names:
            i = table.column_names.index("sex")
            table = table.set_column(i, "sex", table.column("sex").dictionary_encode())
        pq.write_table(table, folder / f"part-{k}.parquet")
    return folder


def audit(path: str, streaming: bool = True, **model) -> dict:
    return {
        "name": "big",
        "seed": 3,
        "data": {
            "path": path,
            "label": "label",
            "positive_label": "good",
            "negative_label": "bad",
            "id_column": "id",
            "sensitive_features": FEATURES,
            **({"streaming": True} if streaming else {}),
        },
        "model": {"adapter": "predictions", "path": path, **(model or {"score_column": "score"})},
        "auditors": {
            "performance": {"n_boot": 300},
            "fairness": {"n_boot": 300, "intersections": [["sex", "region"]]},
        },
        "gates": [
            {"rule": "four_fifths", "slice": "sex"},
            {"metric": "performance.roc_auc", "op": ">=", "threshold": 0.6},
            {"metric": "performance.accuracy", "op": ">=", "threshold": 0.7},
            {"metric": "fairness.equal_opportunity_difference[sex*region]", "op": "<=", "threshold": 0.2},
            {"metric": "fairness.equalized_odds_difference[region]", "op": "<=", "threshold": 0.5},
        ],
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed")
    frame = make_frame()
    write_parts(frame, root / "preds")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "all.parquet")
    return root, frame


@pytest.fixture(scope="module")
def runs(data):
    root, _ = data
    streamed, out = run_audit(write_config(root, audit("preds"), "streamed.yaml"), out=root / "out")
    in_memory, _ = run_audit(write_config(root, audit("all.parquet", streaming=False), "memory.yaml"), write=False)
    return streamed, in_memory, out


def without_auc(entry: dict) -> dict:
    out = {k: v for k, v in entry.items() if k not in ("roc_auc", "roc_auc_binning_error")}
    out["ci"] = {k: v for k, v in entry["ci"].items() if k != "roc_auc"}
    return out


def test_streamed_fairness_equals_the_in_memory_audit_fairlearn_and_sklearn(data, runs):
    _, frame = data
    streamed, in_memory, _ = runs
    got, expected = streamed.auditors["fairness"].summary(), in_memory.auditors["fairness"].summary()
    assert got["disparities"] == expected["disparities"]  # values, intervals, groups compared: to the last digit
    assert got["by_group"].keys() == expected["by_group"].keys() == {"sex", "region", "sex*region"}
    assert any(g["status"] == "insufficient" for g in got["by_group"]["sex*region"].values())  # small-group rule
    y = (frame["label"] == "good").to_numpy().astype(int)
    scores = frame["score"].to_numpy()
    y_pred = (scores >= 0.5).astype(int)
    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "precision": lambda a, b: precision_score(a, b, zero_division=0),
        "accuracy": accuracy_score,
    }
    for name in got["by_group"]:
        columns = name.split("*")
        assert {g: without_auc(e) for g, e in got["by_group"][name].items()} == {
            g: without_auc(e) for g, e in expected["by_group"][name].items()
        }
        frame_ = MetricFrame(metrics=metrics, y_true=y, y_pred=y_pred, sensitive_features=frame[columns])
        labels = frame[columns].astype(str).agg("*".join, axis=1).to_numpy()
        for key, row in frame_.by_group.iterrows():
            group = "*".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            entry = got["by_group"][name][group]
            for metric in metrics:
                assert entry[metric] == pytest.approx(row[metric], abs=1e-12), (name, group, metric)
            mask = labels == group
            exact = roc_auc_score(y[mask], scores[mask])
            assert abs(entry["roc_auc"] - exact) <= entry["roc_auc_binning_error"] + 1e-12, (name, group)
    sex = frame["sex"]
    assert got["disparities"]["sex"]["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, y_pred, sensitive_features=sex), abs=1e-12
    )
    assert got["disparities"]["sex"]["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, y_pred, sensitive_features=sex), abs=1e-12
    )


def test_streamed_performance_and_gates_equal_the_in_memory_ones(data, runs):
    _, frame = data
    streamed, in_memory, _ = runs
    got, expected = streamed.auditors["performance"], in_memory.auditors["performance"]
    same = ("n", "n_positive", "accuracy", "balanced_accuracy", "precision", "recall", "f1")
    for key in same:
        assert got.metrics[key] == pytest.approx(expected.metrics[key], abs=1e-12), key
    assert {k: v for k, v in got.ci.items() if k != "roc_auc"} == {
        k: v for k, v in expected.ci.items() if k != "roc_auc"
    }
    assert got.confusion_matrix == expected.confusion_matrix
    y = (frame["label"] == "good").to_numpy().astype(int)
    scores = frame["score"].to_numpy()
    y_pred = (scores >= 0.5).astype(int)
    assert got.metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, y_pred), abs=1e-12)
    assert got.metrics["fpr"] == pytest.approx(false_positive_rate(y, y_pred), abs=1e-12)
    assert got.metrics["selection_rate"] == pytest.approx(y_pred.mean(), abs=1e-12)
    bound = got.metrics["roc_auc_binning_error"]
    assert 0 < bound < 1e-4 and abs(got.metrics["roc_auc"] - roc_auc_score(y, scores)) <= bound
    assert got.metrics["expected_calibration_error"] is None and got.metrics["expected_calibration_error_reason"]
    assert got.roc_curve["fpr"][0] == 0 and got.roc_curve["tpr"][-1] == 1
    assert [(g.id, g.status) for g in streamed.gates] == [(g.id, g.status) for g in in_memory.gates]
    statuses = {g.id: g for g in streamed.gates}
    assert statuses["fairness.equal_opportunity_difference[sex*region]"].status == "inconclusive"
    assert statuses["fairness.equal_opportunity_difference[sex*region]"].left_out  # the small cells, named


def test_a_streamed_run_never_loads_the_rows(data, monkeypatch):
    root, _ = data

    def refuse(*args, **kwargs):
        raise AssertionError("a streamed audit read the whole table into memory")

    import auditkit.adapters.predictions
    import auditkit.data

    for target in (pd, pq):
        monkeypatch.setattr(target, "read_parquet" if target is pd else "read_table", refuse)
    monkeypatch.setattr(auditkit.data, "read_table", refuse)
    monkeypatch.setattr(auditkit.adapters.predictions, "read_table", refuse)
    seen = []
    count = counts_module.batch_counts
    monkeypatch.setattr(
        counts_module, "batch_counts", lambda table, spec: seen.append(table.num_rows) or count(table, spec)
    )
    result, out = run_audit(write_config(root, audit("preds"), "never.yaml"), out=root / "never")
    assert sum(seen) == N and len(seen) >= 3 and max(seen) <= N // 3 + 1  # batch by batch, file by file
    assert result.auditors["performance"].metrics["n"] == N
    names = json.loads((out / ".auditkit-output").read_text())["files"]
    assert "predictions.csv" not in names and not (out / "predictions.csv").exists()
    assert set(names) == {p.name for p in out.iterdir()} - {".auditkit-output"}
    summary = json.loads((out / "summary.json").read_text())
    assert any("predictions.csv is not written" in note for note in summary["notes"])
    assert "binned scores" in (out / "report.html").read_text(encoding="utf-8")
    run_audit(write_config(root, audit("preds"), "never.yaml"), out=out)  # its own output folder is replaced


def test_baseline_gates_compare_streamed_runs_by_intervals(data, runs):
    root, _ = data
    _, _, out = runs
    config = write_config(root, audit("preds"), "again.yaml")
    result, _ = run_audit(config, baseline=out / "summary.json", write=False)
    assert {g.baseline.method for g in result.gates} == {"intervals"}
    assert not any(g.baseline.status == "regressed" for g in result.gates)


def test_predicted_labels_without_scores(data):
    root, frame = data
    frame = frame.assign(decision=np.where(frame["score"] >= 0.6, "good", "bad"))
    write_parts(frame, root / "labels")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "labels.parquet")
    model = {"predicted_column": "decision"}
    streamed, _ = run_audit(write_config(root, audit("labels", **model), "labels.yaml"), write=False)
    memory, _ = run_audit(write_config(root, audit("labels.parquet", False, **model), "lm.yaml"), write=False)
    for key in ("accuracy", "recall", "roc_auc"):  # hard labels as scores: nothing is lost to the bins
        assert streamed.auditors["performance"].metrics[key] == pytest.approx(
            memory.auditors["performance"].metrics[key], abs=1e-12
        )
    assert streamed.auditors["fairness"].disparities == memory.auditors["fairness"].disparities


def broken(root, name: str, part: int, edit) -> str:
    frame = make_frame(3000, seed=1)
    folder = write_parts(frame, root / name)
    table = pq.read_table(folder / f"part-{part}.parquet")
    pq.write_table(edit(table), folder / f"part-{part}.parquet")
    return name


def _set(column: str, values):
    return lambda t: t.set_column(t.column_names.index(column), column, pa.array(values(t)))


BAD_FILES = {
    "missing score": (
        2,
        lambda t: t.drop_columns(["score"]),
        r"part-2\.parquet: column 'score' \(from model\.score_column\)",
    ),
    "missing feature": (
        1,
        lambda t: t.drop_columns(["region"]),
        r"part-1\.parquet: column 'region' \(from data\.sensitive",
    ),
    "text score": (
        1,
        _set("score", lambda t: ["high"] * t.num_rows),
        r"part-1\.parquet: score column 'score' holds string",
    ),
    "score above 1": (
        2,
        _set("score", lambda t: np.r_[t.column("score").to_numpy()[:-1], 1.5]),
        r"part-2\.parquet: column 'score' must hold probabilities in \[0, 1\].*found 1\.5",
    ),
    "missing score value": (
        0,
        _set("score", lambda t: [None, *t.column("score").to_pylist()[1:]]),
        r"part-0\.parquet: column 'score' must hold probabilities",
    ),
    "unknown label": (
        1,
        _set("label", lambda t: ["maybe", *t.column("label").to_pylist()[1:]]),
        r"part-1\.parquet: column 'label' holds 'maybe', neither 'good' nor 'bad'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_one_error_naming_the_file_and_column(tmp_path, case):
    part, edit, message = BAD_FILES[case]
    name = broken(tmp_path, "p", part, edit)
    with pytest.raises(AuditError, match=message) as caught:
        run_audit(write_config(tmp_path, audit(name)), write=False)
    assert len(str(caught.value).splitlines()) == 1


def test_the_cli_prints_one_error_line_for_a_bad_batch(tmp_path):
    part, edit, message = BAD_FILES["score above 1"]
    write_config(tmp_path, audit(broken(tmp_path, "p", part, edit)))
    done = run_cli("run", "audit.yaml", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "part-2.parquet: column 'score' must hold probabilities" in done.stderr and "Traceback" not in done.stderr


def _multiclass(c: dict) -> None:
    c["data"] = {k: v for k, v in c["data"].items() if k not in ("positive_label", "negative_label")}
    c["data"]["task"] = "multiclass"


def _other_path(c: dict) -> None:
    c["model"]["path"] = "elsewhere.parquet"


def _explain(c: dict) -> None:
    c["auditors"]["explain"] = {}


def _hf_text(c: dict) -> None:
    c["model"] = {"adapter": "hf-text", "path": "preds"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_multiclass, "streaming audits binary tasks only"),
        (_other_path, "model.path: a streamed audit .* set model.path to data.path"),
        (_explain, "auditor 'explain' needs the rows, which a streamed audit"),
        (_hf_text, "adapter 'hf-text' cannot audit a streamed dataset: that needs the 'count' capability"),
    ],
)
def test_what_a_streamed_audit_cannot_do_is_refused_at_validate(data, edit, message):
    root, _ = data
    config = audit("preds")
    edit(config)
    with pytest.raises(AuditError, match=message):
        validate_config(write_config(root, config, "refused.yaml"))


def test_validate_reads_footers_only(data):
    root, _ = data
    lines = validate_config(write_config(root, audit("preds"), "ok.yaml"))
    assert f"0 train rows, {N} test rows" in lines[1] and "all 3 files (streamed)" in lines[-1]


def test_boolean_labels_and_zero_one_predictions_read_as_in_memory(tmp_path):
    frame = make_frame(4000, seed=2)
    frame = frame.assign(label=frame["label"] == "good", decision=(frame["score"] >= 0.4).astype(int))
    write_parts(frame, tmp_path / "b")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "b.parquet")
    results = []
    for path, streaming in (("b", True), ("b.parquet", False)):
        config = audit(path, streaming, score_column="score", predicted_column="decision")
        config["data"].update(positive_label=True, negative_label=False)
        results.append(run_audit(write_config(tmp_path, config), write=False)[0])
    streamed, memory = (r.auditors["fairness"] for r in results)
    assert streamed.disparities == memory.disparities
    assert (
        results[0].auditors["performance"].metrics["accuracy"]
        == results[1].auditors["performance"].metrics["accuracy"]
        == pytest.approx(float(((frame["score"] >= 0.4) == frame["label"]).mean()))
    )


def test_too_many_groups_is_one_error_before_memory_runs_out(tmp_path, monkeypatch):
    monkeypatch.setattr(counts_module, "MAX_GROUPS", 5)  # 2 x 4 = 8 combinations of sex and region
    write_parts(make_frame(3000, seed=6), tmp_path / "p")
    with pytest.raises(AuditError, match=r"part-0\.parquet: the sensitive features sex, region take more than 5"):
        run_audit(write_config(tmp_path, audit("p")), write=False)
