"""``sklearn``: scikit-learn pipelines saved with skops, loaded with an explicit list of trusted types.

auditkit never unpickles: a pipeline is read with ``skops.io.load``, which refuses any type it
was not told to trust. skops trusts the common scikit-learn estimators itself; everything else
it reports must be on :data:`TRUSTED_TYPES` or the user's ``model.trusted_types``. The model
reads data columns (the fitted pipeline's ``feature_names_in_``, or ``model.features``), so it is
explained by perturbing columns (:class:`~auditkit.adapters.capabilities.FeatureAttributable`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from auditkit.adapters.base import ModelAdapter, resolve_device
from auditkit.adapters.capabilities import FeatureAttributable, Refittable
from auditkit.adapters.outputs import check_probabilities, expected_columns
from auditkit.config import DataConfig, ModelConfigBase, StrictModel
from auditkit.data import AuditData, Split, label_text
from auditkit.errors import AuditError
from auditkit.predictions import Predictions
from auditkit.progress import ProgressReporter

MODEL_FILE = "model.skops"
PICKLES = (".pkl", ".pickle", ".joblib", ".sav", ".dill")
#: Types skops does not trust by default that auditkit's own pipelines need; nothing that runs code.
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.compose._column_transformer._RemainderColsList",
)
DP_REFUSAL = (
    "DP runs retrain the model with DP-SGD, which needs a differentiable model with per-sample "
    "gradients; a scikit-learn pipeline or ONNX graph has neither (the membership-inference attack "
    "on the audited model needs no retraining: see the README)"
)


class PipelineBuild(StrictModel):
    """Train a scikit-learn pipeline: one-hot categoricals and scaled numerics into one estimator."""

    features: list[str] | None = Field(
        None,
        min_length=1,
        description="Input columns; default every column but the label, id, derived, text and sensitive columns "
        "(sensitive features are model inputs only when listed here).",
    )
    estimator: Literal["logistic_regression", "hist_gradient_boosting"] = "logistic_regression"
    C: float = Field(1.0, gt=0, description="logistic_regression: inverse regularisation strength.")
    max_iter: int = Field(1000, ge=1, description="Solver iterations (logistic) or boosting rounds.")
    learning_rate: float = Field(0.1, gt=0, description="hist_gradient_boosting: shrinkage.")
    max_leaf_nodes: int = Field(31, ge=2, description="hist_gradient_boosting: leaves per tree.")


class SklearnConfig(ModelConfigBase):
    adapter: Literal["sklearn"]
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="Columns the pipeline reads, in order; default the fitted pipeline's feature_names_in_.",
    )
    trusted_types: list[str] = Field(
        default_factory=list, description="Extra types skops may load (full dotted names); review each one."
    )
    build: PipelineBuild | None = None


def build_columns(settings: PipelineBuild, data: AuditData) -> list[str]:
    frame = data.train.frame
    excluded = data.non_feature_columns | set(data.sensitive_features)
    columns = settings.features or [str(c) for c in frame.columns if c not in excluded]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AuditError(f"model.build.features: column '{missing[0]}' is not in the data")
    if not columns:
        raise AuditError("model.build.features: no input columns left; list them in model.build.features")
    return columns


def is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def fit_pipeline(settings: PipelineBuild, data: AuditData, seed: int) -> Any:
    """The pipeline the sklearn and onnx builds share, fitted on the training split.

    Numeric columns become float64 and categorical ones text before fitting, so that the ONNX
    export sees the same two kinds of input (float and string tensors).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = build_columns(settings, data)
    frame = model_frame(data.train.frame, columns)
    numeric = [c for c in columns if is_numeric(frame[c])]
    categorical = [c for c in columns if c not in numeric]
    steps = []
    if categorical:
        steps.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    if numeric:
        scale = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        steps.append(("numeric", scale, numeric))
    if settings.estimator == "logistic_regression":
        estimator: Any = LogisticRegression(C=settings.C, max_iter=settings.max_iter)
    else:
        estimator = HistGradientBoostingClassifier(
            learning_rate=settings.learning_rate,
            max_iter=settings.max_iter,
            max_leaf_nodes=settings.max_leaf_nodes,
            random_state=seed,
        )
    pipeline = Pipeline([("encode", ColumnTransformer(steps, sparse_threshold=0.0)), ("classify", estimator)])
    return pipeline.fit(frame, data.train.y)


def model_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns a model reads: numbers as float64, anything else as text (missing -> 'nan')."""
    out = {}
    for column in columns:
        values = frame[column]
        out[column] = values.astype(np.float64) if is_numeric(values) else values.astype(str)
    return pd.DataFrame(out, index=frame.index)


def task_classes(data_config: DataConfig) -> tuple[str, ...] | None:
    """The task's class names in label-index order, when the config fixes them (multiclass without
    ``data.classes`` takes them from the data: known once a split is scored)."""
    if data_config.task == "multiclass":
        return tuple(str(c).strip() for c in data_config.classes) if data_config.classes else None
    return (label_text(data_config.negative_label), label_text(data_config.positive_label))


def class_order(model_classes: Any, label_names: tuple[str, ...]) -> np.ndarray:
    """For each label index, the model output that stands for it.

    A model's classes are matched to the data's label names (``bad``/``good``) or to label
    indices (0/1, what auditkit's own builds train on). A model with more or fewer classes
    than the task has would have outputs dropped or missing: refused.
    """
    names = [str(c) for c in np.asarray(model_classes).tolist()]
    if len(names) != len(label_names):
        raise AuditError(f"the model's classes are {names}, {len(names)} of them; {expected_columns(label_names)}")
    order = []
    for index, label in enumerate(label_names):
        if label in names:
            order.append(names.index(label))
        elif str(index) in names:
            order.append(names.index(str(index)))
        else:
            raise AuditError(
                f"the model's classes {names} do not include label '{label}' (or its index {index}); "
                "train it on the data's label values or on 0/1"
            )
    return np.asarray(order, dtype=int)


def predictions_from(split: Split, probabilities: np.ndarray, order: np.ndarray) -> Predictions:
    """Predictions in label-index order from a model's probabilities in its own order (already checked)."""
    ordered = np.asarray(probabilities, dtype=np.float64)[:, order]
    if ordered.shape[1] == 2:
        y_pred = (ordered[:, 1] >= 0.5).astype(np.int64)
    else:
        y_pred = ordered.argmax(axis=1).astype(np.int64)
    return Predictions(split.ids, split.y, ordered, y_pred, 0, None, split.classes)


class FrameModelAdapter(ModelAdapter, FeatureAttributable):
    """What the sklearn and onnx adapters share: columns in, probabilities out, on the CPU.

    ``model_classes`` are the classes the model declares, in its output order (None: the outputs are
    in label-index order). Their order against the task's classes is fixed at load when the config
    names the classes, else at the first split scored (a multiclass task without ``data.classes``).
    """

    lacks: ClassVar[dict[str, str]] = {"retrain": DP_REFUSAL}
    #: What messages call the probability output, e.g. "predict_proba".
    output_name: str = "the probability output"

    def __init__(
        self,
        config: ModelConfigBase,
        model_dir: Path,
        columns: list[str],
        model_classes: list[str] | None,
        classes: tuple[str, ...] | None,
    ) -> None:
        super().__init__(config.model_copy(update={"device": "cpu"}), model_dir)
        self.device = resolve_device("cpu")
        self.columns = columns
        self.model_classes = model_classes
        self.order: np.ndarray | None = self.order_for(classes) if classes is not None else None

    def order_for(self, classes: tuple[str, ...]) -> np.ndarray:
        """For each of the task's classes, the model output holding it."""
        if self.model_classes is None:
            return np.arange(len(classes))
        try:
            return class_order(self.model_classes, classes)
        except AuditError as exc:
            raise AuditError(f"model.path {self.model_dir}: {exc}") from None

    @classmethod
    def check_data(cls, config: ModelConfigBase, data_config: DataConfig) -> None:
        if Path(config.path).suffix.lower() in PICKLES:
            raise AuditError(
                f"model.path {config.path}: auditkit never loads pickle files (they run code when read); "
                f"save the pipeline with skops.io.dump as {MODEL_FILE} in a model folder"
            )

    def input_columns(self) -> list[str]:
        return list(self.columns)

    def output_index(self, label: np.ndarray) -> np.ndarray:
        if self.order is None:
            raise AuditError("model: a multiclass model maps classes to outputs once it has scored a split")
        return self.order[np.asarray(label, dtype=int)]

    def check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise AuditError(f"model.path {self.model_dir}: the model reads column '{missing[0]}', absent in the data")

    def predict(self, split: Split, progress: ProgressReporter) -> Predictions:
        self.check_columns(split.frame)
        self.order = self.order_for(split.classes)
        what = f"model.path {self.model_dir}: {self.output_name}"
        probabilities = check_probabilities(self.predict_frame(split.frame), split.classes, split.ids, what)
        return predictions_from(split, probabilities, self.order)


class SklearnAdapter(FrameModelAdapter, Refittable):
    """scikit-learn pipelines (``predict_proba``), read with skops."""

    name = "sklearn"
    Config = SklearnConfig

    output_name = "predict_proba"

    def __init__(
        self,
        config: SklearnConfig,
        model_dir: Path,
        pipeline: Any,
        columns: list[str],
        model_classes: list[str],
        classes: tuple[str, ...] | None,
    ):
        super().__init__(config, model_dir, columns, model_classes, classes)
        self.pipeline = pipeline

    @classmethod
    def load(cls, config: SklearnConfig, data_config: DataConfig) -> SklearnAdapter:  # type: ignore[override]
        path = Path(config.path)
        pipeline = load_skops(path / MODEL_FILE if path.is_dir() else path, config.trusted_types)
        if not hasattr(pipeline, "predict_proba"):
            raise AuditError(f"model.path {path}: the {type(pipeline).__name__} has no predict_proba")
        fitted = getattr(pipeline, "feature_names_in_", None)
        columns = list(config.features or ([str(c) for c in fitted] if fitted is not None else []))
        if not columns:
            raise AuditError(
                f"model.features: the pipeline in {path} was not fitted on named columns; list its input columns"
            )
        try:
            model_classes = [str(c) for c in np.asarray(pipeline.classes_).tolist()]
        except AttributeError:
            raise AuditError(f"model.path {path}: the pipeline is not fitted (no classes_)") from None
        return cls(config, path, pipeline, columns, model_classes, task_classes(data_config))

    @classmethod
    def build(  # type: ignore[override]
        cls, config: SklearnConfig, data: AuditData, out_dir: Path, seed: int, progress: ProgressReporter
    ) -> None:
        import skops.io

        assert config.build is not None
        with progress.task("Training pipeline", total=1) as advance:
            pipeline = fit_pipeline(config.build, data, seed)
            advance(1)
        skops.io.dump(pipeline, out_dir / MODEL_FILE)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(model_frame(frame, self.columns)), dtype=np.float64)

    def unfitted(self) -> Any:
        from sklearn.base import clone

        return clone(self.pipeline)

    def model_inputs(self, split: Split) -> pd.DataFrame:
        self.check_columns(split.frame)
        return model_frame(split.frame, self.columns)


def load_skops(file: Path, extra_trusted: list[str]) -> Any:
    """Load a skops file, refusing any type neither skops, auditkit nor the user trusts."""
    import skops.io

    if file.suffix.lower() in PICKLES:
        raise AuditError(f"model.path {file}: auditkit never loads pickle files; save the pipeline with skops.io.dump")
    if not file.is_file():
        raise AuditError(f"model.path {file.parent}: no {MODEL_FILE} (a pipeline saved with skops.io.dump)")
    try:
        untrusted = skops.io.get_untrusted_types(file=file)
    except Exception as exc:  # a corrupt or foreign file: skops raises many kinds
        raise AuditError(f"model.path {file}: not a readable skops file: {str(exc).splitlines()[0]}") from None
    allowed = set(TRUSTED_TYPES) | set(extra_trusted)
    refused = [t for t in untrusted if t not in allowed]
    if refused:
        raise AuditError(
            f"model.path {file}: refusing untrusted type '{refused[0]}'"
            + (f" and {len(refused) - 1} more" if len(refused) > 1 else "")
            + "; review it and list it under model.trusted_types if you trust it"
        )
    try:
        return skops.io.load(file, trusted=[t for t in untrusted if t in allowed])
    except Exception as exc:
        raise AuditError(f"model.path {file}: skops could not load it: {str(exc).splitlines()[0]}") from None
