"""``onnx``: any classifier exported to ONNX, run by onnxruntime on the CPU provider.

Two input layouts are read: one tensor input per data column (what skl2onnx emits for a
pipeline with a ColumnTransformer: string tensors for categoricals, float tensors for numbers),
or a single float tensor of ``model.features`` in order (XGBoost, LightGBM, torch exports of
already-encoded features). The output read is the probability tensor (``probabilities``, or the
only float output of shape (n, k)). The graph's inputs are checked against the data at load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from auditkit.adapters.outputs import expected_columns
from auditkit.adapters.sklearn import FrameModelAdapter, PipelineBuild, fit_pipeline, model_frame, task_classes
from auditkit.config import DataConfig, ModelConfigBase
from auditkit.data import AuditData, read_table
from auditkit.errors import AuditError
from auditkit.progress import ProgressReporter

MODEL_FILE = "model.onnx"
NUMERIC_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


class OnnxBuild(PipelineBuild):
    """Train the sklearn adapter's pipeline and export it with skl2onnx (per-column inputs)."""

    estimator: Literal["logistic_regression"] = Field(
        "logistic_regression",
        description="skl2onnx 1.20 cannot export HistGradientBoostingClassifier with onnx 1.23, so only this one.",
    )
    target_opset: int = Field(17, ge=9)


class OnnxConfig(ModelConfigBase):
    adapter: Literal["onnx"]
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="Single-tensor models: the data columns of the tensor, in order (numeric columns).",
    )
    output: str | None = Field(None, description="Name of the probability output; default 'probabilities'.")
    classes: list[str] | None = Field(
        None, description="Label of each probability column, when the graph does not name its classes."
    )
    build: OnnxBuild | None = None


class OnnxAdapter(FrameModelAdapter):
    """ONNX classifiers through onnxruntime (CPU)."""

    name = "onnx"
    Config = OnnxConfig

    def __init__(
        self,
        config: OnnxConfig,
        model_dir: Path,
        session: Any,
        columns: list[str],
        model_classes: list[str] | None,
        classes: tuple[str, ...] | None,
    ):
        super().__init__(config, model_dir, columns, model_classes, classes)
        self.session = session
        self.inputs = {i.name: i.type for i in session.get_inputs()}
        self.single = len(self.inputs) == 1 and config.features is not None
        self.output = _probability_output(session, config.output, model_dir)
        self.output_name = f"output '{self.output}'"
        _check_declared_output(session, self.output, classes, model_dir)

    @classmethod
    def load(cls, config: OnnxConfig, data_config: DataConfig) -> OnnxAdapter:  # type: ignore[override]
        import onnx
        import onnxruntime

        path = Path(config.path)
        file = path / MODEL_FILE if path.is_dir() else path
        if not file.is_file():
            raise AuditError(f"model.path {path}: no {MODEL_FILE}")
        try:
            graph = onnx.load(str(file))
            session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx and onnxruntime raise their own kinds for a bad graph
            raise AuditError(f"model.path {file}: not a loadable ONNX model: {str(exc).splitlines()[0]}") from None
        inputs = session.get_inputs()
        if len(inputs) == 1 and config.features is not None:
            columns = list(config.features)
            if inputs[0].type not in NUMERIC_TYPES:
                raise AuditError(f"model.path {file}: the single input '{inputs[0].name}' is not a numeric tensor")
        else:
            columns = [i.name for i in inputs]
            odd = [i for i in inputs if i.type not in NUMERIC_TYPES and i.type != "tensor(string)"]
            if odd:
                raise AuditError(f"model.path {file}: input '{odd[0].name}' has type {odd[0].type}; expected tensors")
        missing = [c for c in columns if c not in data_columns(data_config)]
        if missing:
            raise AuditError(f"model.path {file}: the ONNX graph reads column '{missing[0]}', which the data lacks")
        named = config.classes or _graph_classes(graph)
        return cls(config, path, session, columns, named, task_classes(data_config))

    @classmethod
    def check_data(cls, config: ModelConfigBase, data_config: DataConfig) -> None:
        super().check_data(config, data_config)
        path = Path(config.path)
        if path.is_file() and path.suffix.lower() != ".onnx":
            raise AuditError(f"model.path {path}: expected a model folder or a .onnx file")

    @classmethod
    def build(  # type: ignore[override]
        cls, config: OnnxConfig, data: AuditData, out_dir: Path, seed: int, progress: ProgressReporter
    ) -> None:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType

        settings = config.build
        assert settings is not None
        with progress.task("Training pipeline", total=1) as advance:
            pipeline = fit_pipeline(settings, data, seed)
            advance(1)
        frame = model_frame(data.train.frame, [str(c) for c in pipeline.feature_names_in_])
        types = [
            (c, FloatTensorType([None, 1]) if frame[c].dtype == np.float64 else StringTensorType([None, 1]))
            for c in frame.columns
        ]
        try:
            graph = convert_sklearn(
                pipeline,
                initial_types=types,
                options={id(pipeline.steps[-1][1]): {"zipmap": False}},
                target_opset=settings.target_opset,
            )
        except Exception as exc:  # skl2onnx raises many kinds for what it cannot convert
            raise AuditError(f"model.build: skl2onnx cannot export the pipeline: {str(exc).splitlines()[0]}") from None
        (out_dir / MODEL_FILE).write_bytes(graph.SerializeToString())

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        self.check_columns(frame)
        if self.single:
            name, kind = next(iter(self.inputs.items()))
            feed = {name: frame[self.columns].to_numpy(dtype=NUMERIC_TYPES[kind])}
        else:
            values = model_frame(frame, self.columns)
            feed = {}
            for name, kind in self.inputs.items():
                column = values[name].to_numpy()
                if kind == "tensor(string)":
                    feed[name] = column.astype(str).astype(object).reshape(-1, 1)
                else:
                    feed[name] = column.astype(NUMERIC_TYPES[kind]).reshape(-1, 1)
        (out,) = self.session.run([self.output], feed)
        return np.asarray(out, dtype=np.float64)


def _probability_output(session: Any, name: str | None, path: Path) -> str:
    outputs = session.get_outputs()
    if name is not None:
        if name not in {o.name for o in outputs}:
            raise AuditError(f"model.output: the ONNX graph in {path} has no output '{name}'")
        return name
    if any(o.name == "probabilities" for o in outputs):
        return "probabilities"
    tensors = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)") and len(o.shape or []) == 2]
    if len(tensors) != 1:
        raise AuditError(
            f"model.path {path}: cannot tell which output holds the probabilities; set model.output "
            f"(outputs: {', '.join(o.name for o in outputs)}; export with zipmap disabled)"
        )
    return tensors[0].name


def _check_declared_output(session: Any, name: str, classes: tuple[str, ...] | None, path: Path) -> None:
    """Refuse at load an output whose declared type or shape cannot hold the task's class probabilities
    (what the graph leaves open, a symbolic width, is checked on the values scored)."""
    output = next(o for o in session.get_outputs() if o.name == name)
    if output.type not in ("tensor(float)", "tensor(double)"):
        raise AuditError(
            f"model.path {path}: output '{name}' has type {output.type}; expected a float tensor of class "
            "probabilities (export with zipmap disabled, or set model.output)"
        )
    shape = list(output.shape or [])
    width = shape[1] if len(shape) == 2 else None
    if len(shape) == 1 or width == 1:
        wanted = f"(n, {len(classes)})" if classes else "(n, k)"
        single = "(n,)" if len(shape) == 1 else "(n, 1)"
        raise AuditError(
            f"model.path {path}: output '{name}' is a single output of shape {single}; "
            f"expected class probabilities of shape {wanted}: a regression model, or a single score?"
        )
    if len(shape) > 2:
        raise AuditError(
            f"model.path {path}: output '{name}' has {len(shape)} dimensions; expected (n, k) probabilities"
        )
    if classes is not None and isinstance(width, int) and width != len(classes):
        raise AuditError(f"model.path {path}: output '{name}' has {width} columns; {expected_columns(classes)}")


def _graph_classes(graph: Any) -> list[str] | None:
    """Class labels a classifier node of the graph declares (skl2onnx, onnxmltools exports)."""
    for node in graph.graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_ints" or attribute.name == "classlabels_int64s":
                return [str(v) for v in attribute.ints]
            if attribute.name == "classlabels_strings":
                return [v.decode() for v in attribute.strings]
    return None


def data_columns(data_config: DataConfig) -> set[str]:
    """The columns the audit data will have: the file's and the derived ones."""
    frame, _ = read_table(Path(data_config.path), data_config.format, data_config.sep)
    return {str(c) for c in frame.columns} | set(data_config.derived)
