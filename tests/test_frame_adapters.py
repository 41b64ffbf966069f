"""sklearn and onnx adapters: skops trust, ONNX inputs, fairness equal to fairlearn, Shapley sampling."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from auditkit.adapters.onnx import OnnxAdapter, OnnxConfig
from auditkit.adapters.sklearn import SklearnAdapter, SklearnConfig
from auditkit.config import DataConfig
from auditkit.config_file import load_config
from auditkit.data import load_data
from auditkit.errors import AuditError
from auditkit.explain.perturbation import ShapleySampling
from auditkit.privacy.mia import cross_entropy, loss_attack
from auditkit.progress import SILENT
from auditkit.runner import run_audit
from tests.conftest import base_config, run_cli, write_config

TOL = 1e-9


def frame_config(adapter: str, model: str, **model_settings) -> dict:
    config = base_config("data.csv", model)
    del config["data"]["text"]
    config["model"] = {"adapter": adapter, "path": model, **model_settings}
    config["auditors"] = {
        "performance": {"n_boot": 100},
        "fairness": {"n_boot": 100, "min_group_size": 5, "min_class_size": 1, "intersections": [["sex", "age_group"]]},
        "explain": {"n_examples": 6, "output": "probability", "faithfulness_percents": [10, 50]},
    }
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory, credit_frame):
    """One audit through each adapter, both built from the same pipeline settings on first run."""
    folder = tmp_path_factory.mktemp("frame")
    credit_frame.to_csv(folder / "data.csv", index=False)
    out = {}
    for adapter in ("sklearn", "onnx"):
        config = write_config(folder, frame_config(adapter, f"model-{adapter}", build={}), f"{adapter}.yaml")
        result, out_dir = run_audit(config, out=folder / f"out-{adapter}")
        out[adapter] = (result, out_dir, config)
    return out


@pytest.mark.parametrize("adapter", ["sklearn", "onnx"])
def test_fairness_numbers_equal_fairlearn_on_the_runs_predictions(runs, adapter):
    result, out_dir, _ = runs[adapter]
    predictions = pd.read_csv(out_dir / "predictions.csv")
    summary = json.loads((out_dir / "summary.json").read_text())["auditors"]["fairness"]
    y, pred = predictions["y_true"].to_numpy(), predictions["y_pred"].to_numpy()
    assert 0 < pred.sum() < len(pred)
    for feature in ("sex", "age_group"):
        sensitive = predictions[feature].astype(str)
        frame = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "tpr": flm.true_positive_rate,
                "fpr": flm.false_positive_rate,
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=sensitive,
        )
        for group, row in frame.by_group.iterrows():
            got = summary["by_group"][feature][group]
            for rate in ("selection_rate", "tpr", "fpr"):
                assert got[rate] == pytest.approx(row[rate], abs=TOL), (feature, group, rate)
            mask = (sensitive == group).to_numpy()
            auc = roc_auc_score(y[mask], predictions["score"].to_numpy()[mask])
            assert got["roc_auc"] == pytest.approx(auc, abs=TOL)
        kwargs = {"y_true": y, "y_pred": pred, "sensitive_features": sensitive}
        disparities = summary["disparities"][feature]
        assert disparities["demographic_parity_difference"] == pytest.approx(
            flm.demographic_parity_difference(**kwargs), abs=TOL
        )
        assert disparities["equalized_odds_difference"] == pytest.approx(
            flm.equalized_odds_difference(**kwargs), abs=TOL
        )


def test_sklearn_and_onnx_predict_the_same(runs):
    sk = runs["sklearn"][0].predictions
    ox = runs["onnx"][0].predictions
    assert list(sk.ids) == list(ox.ids)
    np.testing.assert_allclose(sk.probabilities, ox.probabilities, atol=1e-5)  # ONNX computes in float32
    assert (sk.y_pred == ox.y_pred).mean() >= 0.98


def test_explanations_are_labelled_shapley_and_efficient(runs):
    for adapter in ("sklearn", "onnx"):
        summary = json.loads((runs[adapter][1] / "summary.json").read_text())["auditors"]["explain"]
        assert summary["method"] == "shapley_value_sampling"
        assert summary["steps"]["unit"] == "permutations"
        assert "median" in summary["baseline"]
        assert summary["relative_delta"]["p95"] < 1e-6  # efficiency holds for every sampled permutation
        assert summary["relative_standard_error"]["share_above_tolerance"] == 0.0
        lines = (runs[adapter][1] / "attributions.jsonl").read_text(encoding="utf-8").splitlines()
        errors = [json.loads(line)["relative_standard_error"] for line in lines]
        assert len(errors) == summary["n_examples"] and "standard_error" not in json.loads(lines[0])
        assert summary["relative_standard_error"]["median"] == float(np.median(errors))  # the summary of the lines
        html = (runs[adapter][1] / "report.html").read_text(encoding="utf-8")
        assert "shapley value sampling" in html


def exact_shapley(f, x: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Shapley values by enumerating every permutation (the independent reference)."""
    d = len(x)
    values = np.zeros(d)
    orders = list(itertools.permutations(range(d)))
    for order in orders:
        current = baseline.copy()
        before = f(current)
        for j in order:
            current[j] = x[j]
            after = f(current)
            values[j] += after - before
            before = after
    return values / len(orders)


def test_shapley_sampling_converges_to_exact_values_and_is_efficient(runs, credit_frame):
    _, _, config_path = runs["sklearn"]
    config = load_config(config_path)
    data = load_data(config.data, 0)
    adapter = SklearnAdapter.load(config.model, config.data)
    engine = ShapleySampling(adapter, data, target_output="probability")
    rows = data.test.frame.iloc[:4]
    targets = [1, 1, 0, 1]
    coarse = engine.attribute(rows.index, rows, targets, 1.0, SILENT, permutations=(16,))
    fine = engine.attribute(rows.index, rows, targets, 1e-9, SILENT, permutations=(16, 64, 256))
    for i, (a, b) in enumerate(zip(coarse, fine, strict=True)):
        x = a.inputs
        exact = exact_shapley(lambda v, t=targets[i]: engine.outputs(v[None, :], [t])[0], x.copy(), engine.baseline)
        assert b.steps == 256
        # efficiency holds for every permutation; Captum accumulates in float32, hence 1e-6
        assert b.relative_delta < 1e-6 and abs(b.total - (b.f_input - b.f_baseline)) < 1e-6
        assert exact.sum() == pytest.approx(b.f_input - b.f_baseline, abs=1e-9)
        assert np.abs(b.scores - exact).max() <= np.abs(a.scores - exact).max() + 1e-12
        assert np.abs(b.scores - exact).max() < 0.05 * max(np.abs(exact).sum(), 1e-3)
        assert b.relative_standard_error < a.relative_standard_error


def test_mia_loss_attack_on_the_audited_pipeline(runs):
    _, _, config_path = runs["sklearn"]
    config = load_config(config_path)
    data = load_data(config.data, 0)
    adapter = SklearnAdapter.load(config.model, config.data)
    train, test = adapter.predict(data.train, SILENT), adapter.predict(data.test, SILENT)
    train_loss = cross_entropy(train.probabilities[np.arange(len(train)), train.y_true])
    test_loss = cross_entropy(test.probabilities[np.arange(len(test)), test.y_true])
    attack = loss_attack(train_loss, test_loss, 1e-5)
    members = np.r_[np.ones(len(train_loss)), np.zeros(len(test_loss))]
    assert attack.auc == pytest.approx(roc_auc_score(members, -np.r_[train_loss, test_loss]), abs=1e-9)


class Doubler(BaseEstimator, TransformerMixin):
    """A custom class skops does not know: it must be refused unless the user trusts it."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return np.asarray(x, dtype=float) * 2


def test_skops_refuses_untrusted_types_unless_listed(tmp_path, credit_frame):
    import skops.io

    folder = tmp_path / "model"
    folder.mkdir()
    frame = credit_frame[["age", "amount"]]
    pipeline = Pipeline([("double", Doubler()), ("classify", LogisticRegression())]).fit(
        frame, credit_frame["risk"] == "good"
    )
    skops.io.dump(pipeline, folder / "model.skops")
    data_config = DataConfig.model_validate(
        {**base_config("d.csv", "m")["data"], "positive_label": "True", "negative_label": "False"}
    )
    with pytest.raises(AuditError, match=f"refusing untrusted type '{Doubler.__module__}.Doubler'"):
        SklearnAdapter.load(SklearnConfig(adapter="sklearn", path=folder, features=["age", "amount"]), data_config)
    trusted = SklearnConfig(
        adapter="sklearn", path=folder, features=["age", "amount"], trusted_types=[f"{Doubler.__module__}.Doubler"]
    )
    adapter = SklearnAdapter.load(trusted, data_config)
    assert adapter.input_columns() == ["age", "amount"]
    expected = pipeline.predict_proba(frame.astype(float))
    np.testing.assert_allclose(adapter.predict_frame(credit_frame), expected)


def test_pickle_files_are_refused_in_one_line(tmp_path, credit_frame):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "model.pkl").write_bytes(b"not read")
    config = frame_config("sklearn", "model.pkl")
    config["auditors"] = {"performance": {}}
    write_config(tmp_path, config)
    done = run_cli("validate", "audit.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert "never loads pickle" in done.stderr


def test_privacy_is_refused_for_pipelines_at_validate(runs):
    folder = runs["sklearn"][2].parent
    config = frame_config("sklearn", "model-sklearn", build={})
    config["auditors"]["privacy"] = {"epsilons": [1]}
    write_config(folder, config, "with_privacy.yaml")
    done = run_cli("validate", "with_privacy.yaml", cwd=folder)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error:")
    assert "privacy" in line and "'sklearn'" in line and "per-sample gradients" in line


def test_onnx_graph_inputs_are_checked_against_the_data(runs, credit_frame, tmp_path):
    model = runs["onnx"][2].parent / "model-onnx"
    credit_frame.drop(columns=["purpose"]).to_csv(tmp_path / "d.csv", index=False)
    data_config = DataConfig.model_validate({**base_config(str(tmp_path / "d.csv"), "m")["data"], "text": None})
    with pytest.raises(AuditError, match="reads column 'purpose', which the data lacks"):
        OnnxAdapter.load(OnnxConfig(adapter="onnx", path=model), data_config)


def test_onnx_single_tensor_input(tmp_path, credit_frame):
    """A model over one float tensor of named numeric columns (how XGBoost or torch exports look)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    columns = ["age", "amount"]
    y = (credit_frame["risk"] == "good").astype(int)
    model = LogisticRegression().fit(credit_frame[columns].to_numpy(np.float32), y)
    graph = convert_sklearn(
        model, initial_types=[("x", FloatTensorType([None, 2]))], options={id(model): {"zipmap": False}}
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(graph.SerializeToString())
    credit_frame.to_csv(tmp_path / "d.csv", index=False)
    data_config = DataConfig.model_validate({**base_config(str(tmp_path / "d.csv"), "m")["data"], "text": None})
    adapter = OnnxAdapter.load(OnnxConfig(adapter="onnx", path=tmp_path / "m", features=columns), data_config)
    expected = model.predict_proba(credit_frame[columns].to_numpy(np.float32))
    np.testing.assert_allclose(adapter.predict_frame(credit_frame), expected, atol=1e-6)
    assert math.isclose(float(adapter.output_index(np.array([1]))[0]), 1)


def test_onnx_of_an_xgboost_model(tmp_path, credit_frame):
    """An XGBoost classifier exported with onnxmltools scores through the onnx adapter as XGBoost does."""
    xgboost = pytest.importorskip("xgboost")
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    columns = ["age", "amount"]
    x = credit_frame[columns].to_numpy(np.float32)
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, random_state=0)
    model.fit(x, (credit_frame["risk"] == "good").astype(int))
    graph = convert_xgboost(model, initial_types=[("x", FloatTensorType([None, 2]))])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(graph.SerializeToString())
    credit_frame.to_csv(tmp_path / "d.csv", index=False)
    data_config = DataConfig.model_validate({**base_config(str(tmp_path / "d.csv"), "m")["data"], "text": None})
    adapter = OnnxAdapter.load(OnnxConfig(adapter="onnx", path=tmp_path / "m", features=columns), data_config)
    np.testing.assert_allclose(adapter.predict_frame(credit_frame), model.predict_proba(x), atol=1e-6)
    assert not np.allclose(model.predict_proba(x)[:, 1], model.predict_proba(x)[0, 1])  # not a constant model
