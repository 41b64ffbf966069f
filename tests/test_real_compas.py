"""The shipped multiclass audit on ProPublica's COMPAS data: numbers equal scikit-learn's and fairlearn's."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate
from sklearn import metrics as skm

from tests.conftest import ROOT, run_cli
from tests.test_real_credit import shipped_config

CLASSES = ["Low", "Medium", "High"]


def test_prepared_compas_csv_is_the_documented_one():
    frame = pd.read_csv(ROOT / "audits" / "data" / "compas.csv")
    assert len(frame) == 6172 and frame["id"].is_unique  # ProPublica's filtered row count
    assert frame["score_text"].value_counts().to_dict() == {"Low": 3421, "Medium": 1607, "High": 1144}
    assert not {"name", "first", "last", "dob"} & set(frame.columns)  # no personal names or birth dates
    readme = (ROOT / "audits" / "data" / "README.md").read_text()
    digest = hashlib.sha256((ROOT / "audits" / "data" / "compas.csv").read_bytes()).hexdigest()
    assert digest in readme


@pytest.mark.slow
def test_compas_multiclass_audit(tmp_path):
    config = shipped_config(tmp_path, "compas_multiclass.yaml", {"explain": {"n_examples": 8}}, epochs=10)
    out = tmp_path / "out"
    proc = run_cli("run", config, "--out", str(out), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 1852
    y = predictions["y_true"].map(CLASSES.index).to_numpy()
    y_pred = predictions["y_pred"].map(CLASSES.index).to_numpy()
    scores = predictions[[f"score_{c}" for c in CLASSES]].to_numpy()
    performance = summary["auditors"]["performance"]
    assert performance["metrics"]["macro_f1"] == pytest.approx(skm.f1_score(y, y_pred, average="macro"), abs=1e-12)
    assert performance["metrics"]["macro_roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, scores, multi_class="ovr"), abs=1e-9
    )
    assert performance["metrics"]["macro_roc_auc"] > 0.6  # learnt from the criminal history, not chance
    fairness = summary["auditors"]["fairness"]
    for c, name in enumerate(CLASSES):
        ovr_true, ovr_pred = (y == c).astype(int), (y_pred == c).astype(int)
        for feature in ("race", "sex"):
            groups = fairness["by_group"][f"{feature}|class={name}"]
            mf = MetricFrame(
                metrics=selection_rate, y_true=ovr_true, y_pred=ovr_pred, sensitive_features=predictions[feature]
            )
            for group, value in mf.by_group.items():
                assert groups[group]["selection_rate"] == pytest.approx(value, abs=1e-9)
        expected = demographic_parity_ratio(ovr_true, ovr_pred, sensitive_features=predictions["sex"])
        assert fairness["disparities"][f"sex|class={name}"]["demographic_parity_ratio"] == pytest.approx(
            expected, abs=1e-9
        )
    gates = {g["id"]: g for g in summary["gates"]}
    assert gates["fairness.demographic_parity_ratio[race|class=High]"]["value"] is not None
    assert np.isfinite(gates["fairness.accuracy_difference[race]"]["value"])
    records = (out / "attributions.jsonl").read_text().splitlines()
    assert len(records) == 8 and all(json.loads(r)["target"] == 2 for r in records)
