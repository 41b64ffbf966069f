"""Fairness counts from a Parquet folder, read batch by batch, against the in-memory path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from auditkit.errors import AuditError
from auditkit.stats.cells import PRED, CellTable, Y
from auditkit.stats.groups import GroupRules, group_metrics
from auditkit.stats.intervals import delong_auc
from auditkit.streaming.auc import binned_auc
from auditkit.streaming.counts import CountSpec, count_predictions
from auditkit.streaming.fairness import group_metrics_from_counts

FEATURES = ("sex", "region", "age_group")


def make_predictions(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n, p=[0.45, 0.55])
    region = rng.choice(["north", "south", "east", "west", "isles"], n, p=[0.3, 0.3, 0.2, 0.19, 0.01])
    age = rng.choice(["under 25", "25-60", "over 60"], n)
    y = rng.random(n) < np.where(sex == "male", 0.35, 0.3)
    logit = 1.2 * (y - 0.5) + 0.4 * (region == "south") + rng.normal(0, 1, n)
    score = (1 / (1 + np.exp(-logit))).astype(np.float32)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "sex": sex,
            "region": region,
            "age_group": age,
            "label": np.where(y, "good", "bad"),
            "score": score,
        }
    )


def write_folder(frame: pd.DataFrame, folder, parts: int = 3, dictionary_first: bool = True):
    """Several files, the first one dictionary-encoded (as pandas writes categoricals)."""
    folder.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        part = frame.iloc[rows]
        table = pa.Table.from_pandas(part, preserve_index=False)
        if k == 0 and dictionary_first:
            table = table.cast(
                pa.schema(
                    [
                        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in FEATURES else f
                        for f in table.schema
                    ]
                )
            )
        pq.write_table(table, folder / f"part-{k}.parquet")
    return folder


SPEC = CountSpec(FEATURES, "label", "good", "bad", "score", bins=1024, source="predictions")


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    frame = make_predictions(30_000)
    return frame, write_folder(frame, tmp_path_factory.mktemp("p") / "predictions")


def in_memory_cells(frame: pd.DataFrame, columns: list[str]) -> CellTable:
    y = (frame["label"] == "good").to_numpy().astype(int)
    y_pred = (frame["score"].to_numpy() >= 0.5).astype(int)
    cells_frame = frame[columns].astype(str).reset_index(drop=True).assign(**{Y: y, PRED: y_pred})
    return CellTable.from_frame(cells_frame, [*columns, Y, PRED])


def test_streamed_counts_equal_the_in_memory_counts_exactly(predictions):
    frame, folder = predictions
    counts = count_predictions(folder, SPEC)
    assert counts.n == len(frame)
    from auditkit.execution.base import InProcessExecutor

    class SmallBatches(InProcessExecutor):  # many batches, so the adding up is exercised
        def fold_parquet(self, path, columns, count, add, batch_rows=1 << 20):
            return super().fold_parquet(path, columns, count, add, batch_rows=4096)

    small = count_predictions(folder, SPEC, SmallBatches())
    columns = sorted(FEATURES)
    for streamed in (counts, small):
        table = streamed.marginal(columns).sorted().cell_table()
        expected = in_memory_cells(frame, columns)
        pd.testing.assert_frame_equal(table.keys, expected.keys, check_dtype=False)
        np.testing.assert_array_equal(table.counts, expected.counts)


def test_group_metrics_from_counts_equal_the_in_memory_ones(predictions):
    frame, folder = predictions
    counts = count_predictions(folder, SPEC)
    slices = [["sex"], ["region"], ["sex", "age_group"]]
    rules = GroupRules(n_boot=200)
    y = (frame["label"] == "good").to_numpy().astype(int)
    scores = frame["score"].to_numpy().astype(np.float64)
    y_pred = (scores >= 0.5).astype(int)
    expected = group_metrics(y, y_pred, scores, frame, slices, rules, np.random.default_rng(7))
    streamed, bounds = group_metrics_from_counts(counts, slices, rules, np.random.default_rng(7))
    assert streamed.keys() == expected.keys()
    for name, report in expected.items():
        got = streamed[name]
        labels = frame[name.split("*")[0]].astype(str)
        for feature in name.split("*")[1:]:
            labels = labels + "*" + frame[feature].astype(str)
        assert got.disparities == report.disparities
        assert got.compared == report.compared
        assert got.groups.keys() == report.groups.keys()
        for group, g in report.groups.items():
            s = got.groups[group]
            assert (s.n, s.n_positive, s.n_predicted_positive, s.insufficient) == (
                g.n,
                g.n_positive,
                g.n_predicted_positive,
                g.insufficient,
            )
            assert {k: v for k, v in s.rates.items() if k != "roc_auc"} == {
                k: v for k, v in g.rates.items() if k != "roc_auc"
            }
            # binned AUC within its stated bound of scikit-learn's exact AUC on the raw scores
            mask = labels.to_numpy() == group
            exact = roc_auc_score(y[mask], scores[mask])
            assert abs(s.rates["roc_auc"].value - exact) <= bounds[name][group] + 1e-12
            assert bounds[name][group] < 2e-3  # 1024 bins: the bound is small, not vacuous


def test_binned_auc_is_the_exact_auc_of_the_binned_scores_with_delong():
    rng = np.random.default_rng(1)
    y = rng.random(5000) < 0.3
    scores = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    bins = 64
    binned = np.minimum((scores * bins).astype(int), bins - 1)
    hist = np.stack([np.bincount(binned[y == k], minlength=bins) for k in (0, 1)])
    auc = binned_auc(hist[1], hist[0], 0.95)
    assert auc is not None
    assert auc.value == pytest.approx(roc_auc_score(y, binned), abs=1e-12)
    value, ci = delong_auc(y.astype(int), binned.astype(float), 0.95)
    assert auc.value == pytest.approx(value, abs=1e-12)
    np.testing.assert_allclose(auc.ci, ci, atol=1e-12)
    exact = roc_auc_score(y, scores)
    assert abs(exact - auc.value) <= auc.error_bound
    assert auc.error_bound > abs(exact - auc.value) / 10  # and not a uselessly loose bound
    assert binned_auc(hist[1], np.zeros(bins), 0.95) is None


def test_bad_prediction_files_name_the_file_and_column(tmp_path, predictions):
    _, folder = predictions
    with pytest.raises(AuditError, match=r"part-0\.parquet: column 'scor' \(from predictions\) is not in this file"):
        count_predictions(folder, CountSpec(FEATURES, "label", "good", "bad", "scor"))
    with pytest.raises(AuditError, match="does not exist"):
        count_predictions(tmp_path / "missing", SPEC)
    bad = make_predictions(100)
    bad.loc[3, "label"] = "maybe"
    pq.write_table(pa.Table.from_pandas(bad), tmp_path / "bad.parquet")
    with pytest.raises(AuditError, match="'label' holds 'maybe'"):
        count_predictions(tmp_path / "bad.parquet", SPEC)
    bad = make_predictions(100)
    bad.loc[3, "score"] = 1.5
    pq.write_table(pa.Table.from_pandas(bad), tmp_path / "bad2.parquet")
    with pytest.raises(AuditError, match="probabilities in"):
        count_predictions(tmp_path / "bad2.parquet", SPEC)


def test_fairness_from_parquet_gives_the_auditor_summary_with_binning_errors(predictions):
    from auditkit.auditors.fairness import slice_summary
    from auditkit.streaming.fairness import fairness_from_parquet, with_binning_errors

    _, folder = predictions
    spec = CountSpec(FEATURES, "label", "good", "bad", "score", bins=4096)
    reports, bounds = fairness_from_parquet(
        folder, spec, [["sex"], ["region"]], GroupRules(n_boot=100), np.random.default_rng(0)
    )
    by_group = {name: slice_summary(report)[0] for name, report in reports.items()}
    with_binning_errors(by_group, bounds)
    female = by_group["sex"]["female"]
    assert 0.5 < female["roc_auc"] < 1 and 0 < female["roc_auc_binning_error"] < 1e-3
    assert female["ci"]["roc_auc"][0] < female["roc_auc"] < female["ci"]["roc_auc"][1]
    assert by_group["region"]["isles"]["n"] < 400  # the small group is reported too
