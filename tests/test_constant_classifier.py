"""A model that predicts one label for every row: its label-based metrics and disparities are null
with the reason, and every gate on them is inconclusive, never a silent pass. Scores still rank
rows, so ROC AUC stays (and decides its gate)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditkit.auditors.base import AuditContext
from auditkit.auditors.performance import PerformanceAuditor, PerformanceSettings
from auditkit.predictions import Predictions
from auditkit.progress import SILENT
from auditkit.runner import run_audit
from auditkit.stats.groups import DISPARITIES, GroupRules, group_metrics, group_metrics_by_class
from tests.conftest import write_config

LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
GATES = [
    {"rule": "four_fifths", "slice": "sex"},
    {"metric": "performance.accuracy", "op": ">=", "threshold": 0.5},
    {"metric": "performance.f1", "op": ">=", "threshold": 0.5},
    {"metric": "fairness.demographic_parity_difference[sex*region]", "op": "<=", "threshold": 0.1},
    {"metric": "performance.roc_auc", "op": ">=", "threshold": 0.5},
]


def frame(n: int = 4000, predicted: str = "good", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.6
    score = 1 / (1 + np.exp(-(2 * (y - 0.5) + rng.normal(0, 1, n))))  # ranks rows well
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "sex": rng.choice(["female", "male"], n),
            "region": rng.choice(["north", "south"], n),
            "label": np.where(y, "good", "bad"),
            "score": score,
            "decision": predicted,
        }
    )


def config(path: str, streaming: bool) -> dict:
    return {
        "name": "constant",
        "seed": 0,
        "data": {
            "path": path,
            "label": "label",
            "positive_label": "good",
            "negative_label": "bad",
            "id_column": "id",
            "sensitive_features": ["sex", "region"],
            **({"streaming": True} if streaming else {}),
        },
        "model": {"adapter": "predictions", "path": path, "score_column": "score", "predicted_column": "decision"},
        "auditors": {
            "performance": {"n_boot": 200},
            "fairness": {"n_boot": 200, "intersections": [["sex", "region"]]},
        },
        "gates": GATES,
    }


@pytest.mark.parametrize("predicted", ["good", "bad"])
@pytest.mark.parametrize("streaming", [False, True], ids=["in_memory", "streamed"])
def test_a_constant_classifier_is_null_with_reason_and_its_gates_inconclusive(tmp_path, predicted, streaming):
    rows = frame(predicted=predicted)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp_path / "p.parquet")
    _, out = run_audit(write_config(tmp_path, config("p.parquet", streaming)), out=tmp_path / "out")
    summary = json.loads((out / "summary.json").read_text())
    metrics = summary["auditors"]["performance"]["metrics"]
    label = "positive" if predicted == "good" else "negative"
    for name in LABEL_METRICS:
        assert metrics[name] is None, name
        assert f"predicts the {label} label for every test row" in metrics[f"{name}_reason"]
        assert summary["auditors"]["performance"]["ci"][name] is None
    assert metrics["roc_auc"] > 0.7  # the scores still rank rows: not withheld
    disparities = summary["auditors"]["fairness"]["disparities"]
    assert set(disparities) == {"sex", "region", "sex*region"}
    for entry in disparities.values():
        for name in DISPARITIES:
            assert entry[name] is None and entry["ci"][name] is None, name
            assert "constant classifier" in entry[f"{name}_reason"]
    statuses = {g["id"]: g["status"] for g in summary["gates"]}
    assert statuses.pop("performance.roc_auc") == "pass"
    assert set(statuses.values()) == {"inconclusive"}, statuses


def test_a_classifier_that_predicts_both_labels_keeps_its_numbers():
    rows = frame()
    rng = np.random.default_rng(1)
    y = (rows["label"] == "good").to_numpy().astype(int)
    y_pred = np.where(rows["sex"] == "male", 1, rng.random(len(rows)) < 0.5).astype(int)  # male: always 1
    reports = group_metrics(y, y_pred, None, rows[["sex"]], [["sex"]], GroupRules(n_boot=200), rng)
    ratio = reports["sex"].disparities["demographic_parity_ratio"]
    assert ratio.value == pytest.approx(y_pred[rows["sex"] == "female"].mean(), abs=1e-12)
    assert ratio.ci is not None


def test_a_constant_multiclass_classifier_withholds_every_disparity_and_label_metric():
    rng = np.random.default_rng(0)
    n, classes = 3000, ("low", "mid", "high")
    y = rng.integers(0, 3, n)
    probabilities = rng.dirichlet([1, 1, 1], n)
    y_pred = np.full(n, 1)
    sensitive = pd.DataFrame({"sex": rng.choice(["female", "male"], n)})
    by_class, accuracy = group_metrics_by_class(
        y, y_pred, probabilities, classes, sensitive, [["sex"]], GroupRules(n_boot=100), rng
    )
    for report in [*by_class.values(), *accuracy.values()]:
        assert all(e.value is None and "constant classifier" in e.reason for e in report.disparities.values())
    assert set(by_class["sex|class=mid"].disparities) == set(DISPARITIES)

    p = Predictions(np.arange(n), y, probabilities, y_pred, classes=classes)
    context = AuditContext(SimpleNamespace(seed=0), None, None, SILENT, _predictions={"test": p})
    result = PerformanceAuditor(PerformanceSettings(n_boot=100)).run(context)
    assert result.metrics["accuracy"] is None and "class 'mid' for every test row" in result.metrics["accuracy_reason"]
    assert result.per_class["mid"]["recall"] is None and result.per_class["mid"]["ci"]["recall"] is None
    assert result.metrics["macro_roc_auc"] is not None  # probabilities still rank rows
