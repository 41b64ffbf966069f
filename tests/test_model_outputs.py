"""Model outputs that do not fit the task are one ``error:`` line naming the output, never a wrong number.

Each adapter is given a tiny model of the wrong kind: three classes on a binary task, a regressor,
raw logits where probabilities belong, scores whose rows do not sum to 1, NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from auditkit.adapters.outputs import check_probabilities
from auditkit.cli import app
from auditkit.config_file import load_config
from auditkit.data import load_data
from auditkit.errors import AuditError
from auditkit.progress import SILENT
from tests.conftest import base_config, write_config
from tests.test_bad_inputs import assert_user_error

COLUMNS = ["age", "amount"]


def validate(folder: Path, model: dict, **data) -> object:
    """``auditkit validate`` of a binary (or, with ``data``, other) audit of data.csv by ``model``."""
    config = base_config("data.csv", model["path"])
    del config["data"]["text"]
    config["data"].update(data)
    config["model"] = model
    if config["data"].get("task") == "multiclass":
        config["gates"] = []
    write_config(folder, config)
    return CliRunner().invoke(app, ["validate", str(folder / "audit.yaml")])


@pytest.fixture()
def folder(tmp_path, credit_frame) -> Path:
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    return tmp_path


# the shared checker


def test_float32_softmax_passes_and_rounding_is_clipped():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, (500, 7)).astype(np.float32)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax = (softmax / softmax.sum(axis=1, keepdims=True)).astype(np.float32)
    softmax[0] = [1 + 1e-7, -1e-8, 0, 0, 0, 0, 0]
    checked = check_probabilities(softmax, [str(j) for j in range(7)], [f"r{i}" for i in range(500)], "out")
    assert checked.dtype == np.float64 and checked.min() == 0.0 and checked.max() == 1.0


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (np.full(3, 0.5), ["out is a single output of shape (n,)", "(n, 2)", "regression"]),
        (np.full((3, 1), 0.5), ["single output of shape (n, 1)"]),
        (np.full((3, 3), 1 / 3), ["out has 3 columns", "the binary task expects 2 (one per label: bad, good)"]),
        (np.array([[0.5, 0.5], [np.nan, 0.5], [0.5, 0.5]]), ["NaN", "1 of 3 rows", "first id r1"]),
        (np.array([[0.5, 0.5], [-3.2, 4.2], [0.5, 0.5]]), ["outside [0, 1]", "min -3.2", "id r1", "logits"]),
        (np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.5]]), ["do not sum to 1", "largest gap 0.4", "id r2"]),
    ],
)
def test_checker_names_the_output_and_what_the_task_expects(values, words):
    with pytest.raises(AuditError) as caught:
        check_probabilities(values, ("bad", "good"), ["r0", "r1", "r2"], "out")
    for word in words:
        assert word in str(caught.value)


# sklearn


class FixedOutput(BaseEstimator, ClassifierMixin):
    """A classifier whose predict_proba is wrong on purpose (skops loads it once trusted)."""

    def __init__(self, kind: str = "logits") -> None:
        self.kind = kind

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x):
        z = (np.asarray(x, dtype=float)[:, 0] - 40) / 5
        p = 1 / (1 + np.exp(-z))
        if self.kind == "logits":
            return np.column_stack([-z, z])
        if self.kind == "three":
            return np.column_stack([1 - p, p / 2, p / 2])
        return np.column_stack([1 - p, np.full(len(p), np.nan)])


def save_skops(folder: Path, model, frame: pd.DataFrame, y) -> dict:
    import skops.io

    (folder / "m").mkdir()
    skops.io.dump(model.fit(frame[COLUMNS].astype(float), y), folder / "m" / "model.skops")
    return {"adapter": "sklearn", "path": "m", "features": COLUMNS}


def test_sklearn_model_of_three_classes_on_a_binary_task(folder, credit_frame):
    y = np.where(credit_frame["age"] < 30, "maybe", credit_frame["risk"])
    model = save_skops(folder, LogisticRegression(max_iter=2000), credit_frame, y)
    assert_user_error(
        validate(folder, model), "model.path", "'bad', 'good', 'maybe'", "the binary task expects 2 (one per label"
    )


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("three", ["predict_proba has 3 columns", "the binary task expects 2"]),
        ("logits", ["predict_proba holds values outside [0, 1]", "logits"]),
        ("nan", ["predict_proba holds missing (NaN)"]),
    ],
)
def test_sklearn_predict_proba_that_does_not_fit_is_refused_at_validate(folder, credit_frame, kind, words):
    model = save_skops(folder, FixedOutput(kind), credit_frame, credit_frame["risk"])
    model["trusted_types"] = [f"{__name__}.FixedOutput"]
    assert_user_error(validate(folder, model), "model.path", *words)


def test_sklearn_multiclass_models_score_in_class_order_and_others_are_refused(folder, credit_frame):
    """A 3-class pipeline audits a 3-class task (it used to be refused for lacking label 'None')."""
    y = np.where(credit_frame["age"] < 30, "maybe", credit_frame["risk"])
    credit_frame.assign(risk=y).to_csv(folder / "data.csv", index=False)
    model = save_skops(folder, LogisticRegression(max_iter=2000), credit_frame, y)
    multiclass = {"task": "multiclass", "positive_label": None, "negative_label": None}
    result = validate(folder, model, **multiclass, classes=["maybe", "bad", "good"])
    assert result.exit_code == 0, result.stderr
    config = load_config(folder / "audit.yaml")
    adapter_data = load_data(config.data, 0)
    from auditkit.adapters.sklearn import SklearnAdapter

    adapter = SklearnAdapter.load(config.model, config.data)
    predictions = adapter.predict(adapter_data.test, SILENT)
    pipeline_order = adapter.pipeline.predict_proba(adapter_data.test.frame[COLUMNS].astype(float))[:, [2, 0, 1]]
    np.testing.assert_allclose(predictions.probabilities, pipeline_order)
    credit_frame.assign(risk=np.where(credit_frame["age"] > 60, "unsure", y)).to_csv(folder / "data.csv", index=False)
    four = validate(folder, model, **multiclass, classes=["maybe", "bad", "good", "unsure"])
    assert_user_error(four, "3 of them", "the multiclass task expects 4 (one per class: maybe, bad, good, unsure)")


# onnx


def save_graph(folder: Path, nodes: list, weights: np.ndarray, output: str, shape: list, kind: int = 1) -> dict:
    """A graph over one float tensor x = (age, amount): z = x @ weights, then ``nodes``; ``kind`` 1 is float."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["z" if nodes else output]), *nodes],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info(output, kind, shape)],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (folder / "m").mkdir()
    onnx.save(model, str(folder / "m" / "model.onnx"))
    return {"adapter": "onnx", "path": "m", "features": COLUMNS}


def node(op: str, output: str, **attributes):
    from onnx import helper

    return helper.make_node(op, ["z"], [output], **attributes)


def test_onnx_regression_output(folder):
    model = save_graph(folder, [], np.array([[0.01], [0.0001]]), "variable", [None, 1])
    assert_user_error(validate(folder, model), "model.path", "output 'variable' is a single output of shape (n, 1)")


def test_onnx_regression_output_of_one_dimension(folder):
    from onnx import helper

    flatten = helper.make_node("Flatten", ["z"], ["f"], axis=0)
    nodes = [flatten, helper.make_node("Squeeze", ["f"], ["probabilities"])]
    model = save_graph(folder, nodes, np.array([[0.01], [0.0001]]), "probabilities", [None])
    assert_user_error(validate(folder, model), "output 'probabilities' is a single output of shape (n,)")


def test_onnx_logits_in_the_probabilities_output(folder):
    model = save_graph(folder, [], np.array([[0.1, -0.1], [0.001, -0.001]]), "probabilities", [None, 2])
    assert_user_error(
        validate(folder, model), "model.path", "output 'probabilities' holds values outside [0, 1]", "raw logits"
    )


@pytest.mark.parametrize("declared", [[None, 3], [None, None]])
def test_onnx_three_probability_columns_on_a_binary_task(folder, declared):
    """Refused at load when the graph declares the width, on the scored values when it does not."""
    weights = np.array([[0.01, -0.01, 0.0], [0.0001, 0.0, -0.0001]])
    model = save_graph(folder, [node("Softmax", "probabilities", axis=1)], weights, "probabilities", declared)
    assert_user_error(
        validate(folder, model), "model.path", "output 'probabilities' has 3 columns", "the binary task expects 2"
    )


def test_onnx_independent_sigmoids_do_not_sum_to_one(folder):
    weights = np.array([[0.01, 0.01], [0.0, 0.0]])
    model = save_graph(folder, [node("Sigmoid", "probabilities")], weights, "probabilities", [None, 2])
    assert_user_error(validate(folder, model), "output 'probabilities': rows do not sum to 1", "largest gap")


def test_onnx_softmax_of_two_fits(folder):
    """The control: the same graph with a 2-class softmax scores."""
    weights = np.array([[0.01, -0.01], [0.0001, -0.0001]])
    model = save_graph(folder, [node("Softmax", "probabilities", axis=1)], weights, "probabilities", [None, 2])
    result = validate(folder, model)
    assert result.exit_code == 0, result.stderr


def test_onnx_label_output_is_not_probabilities(folder):
    from onnx import helper

    nodes = [helper.make_node("ArgMax", ["z"], ["label"], axis=1)]
    model = save_graph(folder, nodes, np.array([[0.1, -0.1], [0.001, -0.001]]), "label", [None, 1], kind=7)
    model["output"] = "label"  # 7: int64
    assert_user_error(validate(folder, model), "output 'label' has type tensor(int64)", "float tensor")


# torch-tabular and hf-text compute the softmax themselves: shapes are checked at load, NaN at scoring


@pytest.fixture(scope="module")
def mlps(tmp_path_factory, credit_frame) -> dict[str, Path]:
    """A binary and a 3-class MLP built on the same rows (one epoch: what they learn does not matter)."""
    from auditkit.adapters.torch_tabular import TorchTabularAdapter

    folder = tmp_path_factory.mktemp("mlps")
    y = np.where(credit_frame["age"] < 30, "maybe", credit_frame["risk"])
    credit_frame.assign(risk3=y).to_csv(folder / "data.csv", index=False)
    built = {}
    for task in ("binary", "multiclass"):
        config = base_config("data.csv", task)
        del config["data"]["text"]
        if task == "multiclass":
            config["data"].update(task="multiclass", label="risk3", positive_label=None, negative_label=None)
            config["gates"] = []
        config["model"] = {"adapter": "torch-tabular", "path": task, "build": {"features": COLUMNS, "epochs": 1}}
        loaded = load_config(write_config(folder, config, f"{task}.yaml"))
        (folder / task).mkdir()
        TorchTabularAdapter.build(loaded.model, load_data(loaded.data, 0), folder / task, 0, SILENT)
        built[task] = folder / task
    return built


def test_torch_tabular_model_of_another_task(folder, credit_frame, mlps):
    y = np.where(credit_frame["age"] < 30, "maybe", credit_frame["risk"])
    assert_user_error(
        validate(folder, {"adapter": "torch-tabular", "path": str(mlps["multiclass"])}),
        "the model has 3 outputs; expected 2 for a binary task",
    )
    credit_frame.assign(risk=y).to_csv(folder / "data.csv", index=False)
    multiclass = {"task": "multiclass", "positive_label": None, "negative_label": None}
    assert_user_error(
        validate(folder, {"adapter": "torch-tabular", "path": str(mlps["binary"])}, **multiclass),
        "names no classes",
        "the multiclass task expects one output per class",
    )


def test_torch_tabular_nan_outputs_are_refused(folder, mlps):
    import torch

    from auditkit.adapters.torch_tabular import TorchTabularAdapter

    validate(folder, {"adapter": "torch-tabular", "path": str(mlps["binary"])})
    config = load_config(folder / "audit.yaml")
    adapter = TorchTabularAdapter.load(config.model, config.data)
    with torch.no_grad():
        adapter.model[-1].bias.fill_(float("nan"))
    with pytest.raises(AuditError, match=r"softmax of the model's logits holds missing \(NaN\)"):
        adapter.predict(load_data(config.data, 0).test, SILENT)


def test_hf_text_nan_outputs_are_refused(workspace):
    import torch

    from auditkit.adapters.hf_text import HfTextAdapter

    config = load_config(workspace / "audit.yaml")
    adapter = HfTextAdapter.load(config.model, config.data)
    with torch.no_grad():
        adapter.model.classifier.bias.fill_(float("nan"))
    with pytest.raises(AuditError, match=r"model.path .*: the softmax of the model's logits holds missing \(NaN\)"):
        adapter.predict(load_data(config.data, 0).test, SILENT)


def test_hf_token_nan_outputs_are_refused(tmp_path):
    import torch

    from auditkit.adapters.hf_token import HfTokenAdapter
    from tests.ner_support import make_sentences, make_tiny_token_bert, vocabulary_texts, write_jsonl

    rows = make_sentences(20)
    write_jsonl(tmp_path / "data.jsonl", rows)
    make_tiny_token_bert(tmp_path / "model", vocabulary_texts(), ["O", "B-location", "B-person"])
    config = {
        "name": "nan_tokens",
        "data": {"task": "token-classification", "path": "data.jsonl"},
        "model": {"adapter": "hf-token", "path": "model"},
        "auditors": {"performance": {"n_boot": 50}},
    }
    config = load_config(write_config(tmp_path, config))
    adapter = HfTokenAdapter.load(config.model, config.data)
    with torch.no_grad():
        adapter.model.classifier.bias.fill_(float("nan"))
    with pytest.raises(AuditError, match=r"model.path .*: the softmax of the model's logits holds missing \(NaN\)"):
        adapter.predict(load_data(config.data, 0).test, SILENT)
