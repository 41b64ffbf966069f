"""``torch-tabular``: an MLP over encoded features, saved as safetensors plus a JSON encoding."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from scipy.special import softmax
from torch.utils.data import TensorDataset

from auditkit.adapters.base import ModelAdapter, positive_probability
from auditkit.adapters.capabilities import Retrainable, RetrainRequest, TabularAttributable
from auditkit.adapters.outputs import SOFTMAX, checked
from auditkit.config import DataConfig, ModelConfigBase, StrictModel
from auditkit.data import AuditData, Split
from auditkit.errors import AuditError
from auditkit.predictions import Predictions
from auditkit.progress import ProgressReporter
from auditkit.training import Trainable, TrainingData, fit, seed_everything

ENCODING_FILE = "encoding.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "auditkit-tabular/1"


class TabularBuild(StrictModel):
    """Train an MLP on the training split."""

    features: list[str] | None = Field(
        None,
        min_length=1,
        description="Input columns; defaults to every column but the label, the id and derived columns.",
    )
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [64, 32])
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(60, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(1e-4, ge=0)


class TabularConfig(ModelConfigBase):
    adapter: Literal["torch-tabular"]
    build: TabularBuild | None = None
    max_missing_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of rows in which a numeric input may be empty (filled with the training mean and "
        "counted in the report); more is an error.",
    )

    #: Settings that do not change what a build produces (the model store leaves them out of its key).
    not_in_build_key: ClassVar[tuple[str, ...]] = ("max_missing_share",)


@dataclass(frozen=True)
class FeatureEncoding:
    """Numeric columns standardised, the others one-hot; unknown categories encode as all zeros.

    A numeric input that does not parse is an error; an empty one is filled with the
    training mean only within ``max_missing_share`` of the rows.
    """

    features: list[dict[str, Any]]
    max_missing_share: float = 0.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str], max_missing_share: float = 0.0) -> FeatureEncoding:
        features: list[dict[str, Any]] = []
        for column in columns:
            values = frame[column]
            if _numbers_as_text(values, column):  # a CSV column with a typo in some other row reads as text
                values = pd.to_numeric(values.where(values.astype(str).str.strip() != ""), errors="coerce")
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                numbers = values.astype(float)
                if numbers.isna().all():
                    raise AuditError(f"data: model input '{column}' is empty in every training row")
                std = float(numbers.std(ddof=0)) or 1.0
                features.append({"name": column, "kind": "numeric", "mean": float(numbers.mean()), "std": std})
            else:
                categories = sorted(values.dropna().astype(str).unique().tolist())
                features.append({"name": column, "kind": "categorical", "categories": categories})
        return cls(features, max_missing_share)

    def missing_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Empty numeric inputs per column; AuditError for a value that is not a number or too many empty."""
        counts = {}
        for f in self.features:
            if f["kind"] != "numeric":
                continue
            values = frame[f["name"]]
            empty = values.isna() | values.astype(str).str.strip().eq("")
            bad = pd.to_numeric(values.where(~empty), errors="coerce").isna() & ~empty
            if bad.any():
                raise AuditError(
                    f"data: numeric model input '{f['name']}' has {int(bad.sum())} values that are not numbers "
                    f"({_first_rows(values[bad])})"
                )
            n_empty = int(empty.sum())
            if n_empty > self.max_missing_share * len(frame):
                raise AuditError(
                    f"data: numeric model input '{f['name']}' is empty in {n_empty} of {len(frame)} rows "
                    f"({_first_rows(values[empty])}); fill them, or allow a share with model.max_missing_share "
                    f"(now {self.max_missing_share:g})"
                )
            if n_empty:
                counts[f["name"]] = n_empty
        return counts

    @property
    def names(self) -> list[str]:
        """One name per encoded column, e.g. ``age`` or ``purpose=education``."""
        out: list[str] = []
        for f in self.features:
            out += [f["name"]] if f["kind"] == "numeric" else [f"{f['name']}={c}" for c in f["categories"]]
        return out

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        self.missing_counts(frame)
        blocks = []
        for f in self.features:
            values = frame[f["name"]]
            if f["kind"] == "numeric":
                numbers = pd.to_numeric(values, errors="coerce").fillna(f["mean"]).to_numpy(float)  # checked above
                blocks.append(((numbers - f["mean"]) / f["std"])[:, None])
            else:
                lookup = {category: i for i, category in enumerate(f["categories"])}
                codes = values.astype(str).map(lookup).fillna(-1).to_numpy(dtype=np.int64)
                onehot = np.zeros((len(frame), len(f["categories"])))
                known = codes >= 0
                onehot[np.flatnonzero(known), codes[known]] = 1.0
                blocks.append(onehot)
        return np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(frame), 0), np.float32)


def _first_rows(values: pd.Series, n: int = 3) -> str:
    shown = ", ".join(f"id {i}: {str(v)[:40]!r}" for i, v in list(values.items())[:n])
    return f"first {shown}" + (", ..." if len(values) > n else "")


def _numbers_as_text(values: pd.Series, column: str) -> bool:
    """Whether a text column holds numbers; a few cells that are not numbers are a typo: say which."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    present = values.dropna()
    present = present[present.astype(str).str.strip() != ""]
    parsed = pd.to_numeric(present, errors="coerce")
    if not len(present) or parsed.notna().mean() < 0.5:
        return False
    if parsed.isna().any():
        raise AuditError(
            f"data: model input '{column}' is numeric but {int(parsed.isna().sum())} values are not numbers "
            f"({_first_rows(present[parsed.isna()])})"
        )
    return True


def make_mlp(n_inputs: int, hidden_sizes: Sequence[int], dropout: float, n_outputs: int = 2) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = n_inputs
    for size in hidden_sizes:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        width = size
    layers.append(torch.nn.Linear(width, n_outputs))
    return torch.nn.Sequential(*layers)


class TorchTabularAdapter(ModelAdapter, TabularAttributable, Retrainable):
    """PyTorch MLPs over tabular features."""

    name = "torch-tabular"
    Config = TabularConfig

    def __init__(
        self,
        config: TabularConfig,
        model_dir: Path,
        encoding: FeatureEncoding,
        model: torch.nn.Module,
        classes: Sequence[str] = (),
    ):
        super().__init__(config, model_dir)
        self.encoding = encoding
        self.notes: dict[str, str] = {}
        self.model = model.to(self.device).eval()
        self.classes = tuple(classes)  # the class names of the outputs, when the model was built multiclass

    @property
    def feature_names(self) -> list[str]:
        return self.encoding.names

    @classmethod
    def load(cls, config: TabularConfig, data_config: DataConfig) -> TorchTabularAdapter:  # type: ignore[override]
        path = Path(config.path)
        if not path.is_dir():
            raise AuditError(f"model.path {path}: model folder not found")
        if not (path / WEIGHTS_FILE).is_file():
            raise AuditError(f"model.path {path}: no {WEIGHTS_FILE}; auditkit loads only safetensors weights")
        try:
            spec = json.loads((path / ENCODING_FILE).read_text(encoding="utf-8"))
            encoding = FeatureEncoding(spec["features"], config.max_missing_share)
            classes = [str(c) for c in spec.get("classes", [])]
            n_outputs = len(classes) if data_config.task == "multiclass" and classes else 2
            model = make_mlp(len(encoding.names), spec["hidden_sizes"], spec.get("dropout", 0.0), n_outputs)
            state = load_file(path / WEIGHTS_FILE)
        except FileNotFoundError:
            raise AuditError(f"model.path {path}: no {ENCODING_FILE} describing the feature encoding") from None
        except SafetensorError as exc:
            raise AuditError(f"model.path {path / WEIGHTS_FILE}: corrupt safetensors weights: {exc}") from None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise AuditError(f"model.path {path}: unreadable model files: {exc}") from None
        if data_config.task == "multiclass" and not classes:  # its 2 outputs would be read as k class probabilities
            raise AuditError(
                f"model.path {path}: {ENCODING_FILE} names no classes, so the model was built for a binary task "
                "(2 outputs); the multiclass task expects one output per class"
            )
        last = max((k for k in state if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]), default=None)
        if last is not None and state[last].shape[0] != n_outputs:
            wanted = f"{n_outputs} (the classes in {ENCODING_FILE})" if n_outputs != 2 else "2 for a binary task"
            raise AuditError(f"model.path {path}: the model has {state[last].shape[0]} outputs; expected {wanted}")
        if data_config.task == "multiclass" and data_config.classes and classes != list(data_config.classes):
            raise AuditError(
                f"model.path {path}: the model was built for classes {classes}, data.classes is {data_config.classes}"
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise AuditError(
                f"model.path {path}: weights do not match {ENCODING_FILE}: {str(exc).splitlines()[0]}"
            ) from None
        return cls(config, path, encoding, model, classes if n_outputs != 2 else ())

    @classmethod
    def build(  # type: ignore[override]
        cls, config: TabularConfig, data: AuditData, out_dir: Path, seed: int, progress: ProgressReporter
    ) -> None:
        settings = config.build
        assert settings is not None
        seed_everything(seed)
        frame = data.train.frame
        columns = settings.features or [c for c in frame.columns if c not in data.non_feature_columns]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise AuditError(f"model.build.features: column '{missing[0]}' is not in the data")
        if data.label_column in columns:
            raise AuditError(
                f"model.build.features: '{data.label_column}' is the label; the model would read the answer"
            )
        if not columns:
            raise AuditError("model.build.features: no input columns; list the columns the model should read")
        encoding = FeatureEncoding.fit(frame, columns, config.max_missing_share)
        model = make_mlp(len(encoding.names), settings.hidden_sizes, settings.dropout, len(data.train.classes))
        train = _training_data(encoding, data.train)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        device = torch.device("cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu")
        fit(
            model,
            train.loader(settings.batch_size, seed),
            optimizer,
            epochs=settings.epochs,
            device=device,
            progress=progress,
            description="Training model",
        )
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, out_dir / WEIGHTS_FILE)
        spec = {
            "format": FORMAT,
            "hidden_sizes": settings.hidden_sizes,
            "dropout": settings.dropout,
            "features": encoding.features,
            **({"classes": list(data.train.classes)} if data.task == "multiclass" else {}),
        }
        (out_dir / ENCODING_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")

    def check_columns(self, split: Split) -> None:
        missing = [f["name"] for f in self.encoding.features if f["name"] not in split.frame.columns]
        if missing:
            raise AuditError(
                f"model.path {self.model_dir}: the model needs column '{missing[0]}', which the data lacks"
            )

    def predict(self, split: Split, progress: ProgressReporter) -> Predictions:
        self.check_columns(split)
        if self.classes and tuple(split.classes) != self.classes:
            raise AuditError(
                f"model.path {self.model_dir}: the model was built for classes {list(self.classes)}; "
                f"the data has {list(split.classes)} (set data.classes to fix the order)"
            )
        missing = self.encoding.missing_counts(split.frame)
        if missing:
            shown = ", ".join(f"'{name}' in {n}" for name, n in missing.items())
            self.notes[split.name] = (
                f"Empty numeric inputs in the {split.name} rows were filled with the training mean: {shown} "
                f"of {len(split)} rows (model.max_missing_share {self.encoding.max_missing_share:g})."
            )
        x = torch.from_numpy(self.encoding.transform(split.frame))
        if self.classes:
            return self._predict_classes(split, x)
        scores = np.empty(len(x), dtype=np.float64)
        raw = np.empty((len(x), 2), dtype=np.float64)
        batch = max(self.config.batch_size, 1024)
        with torch.inference_mode():
            for start in range(0, len(x), batch):
                logits = self.model(x[start : start + batch].to(self.device))
                scores[start : start + batch] = positive_probability(logits, 1).cpu().double().numpy()
                raw[start : start + batch] = logits.cpu().double().numpy()
        predictions = Predictions(split.ids, split.y, scores, (scores >= 0.5).astype(np.int64), 0, raw, split.classes)
        return checked(predictions, f"model.path {self.model_dir}: {SOFTMAX}")

    def _predict_classes(self, split: Split, x: torch.Tensor) -> Predictions:
        """Multiclass: the softmax over the k outputs (label index order) and its argmax."""
        raw = np.empty((len(x), len(self.classes)), dtype=np.float64)
        batch = max(self.config.batch_size, 1024)
        with torch.inference_mode():
            for start in range(0, len(x), batch):
                raw[start : start + batch] = self.model(x[start : start + batch].to(self.device)).cpu().double().numpy()
        probabilities = softmax(raw, axis=1)
        predictions = Predictions(
            split.ids, split.y, probabilities, probabilities.argmax(axis=1), 0, raw, split.classes
        )
        return checked(predictions, f"model.path {self.model_dir}: {SOFTMAX}")

    def input_notes(self) -> list[str]:
        return list(self.notes.values())

    def trainable_copy(self) -> torch.nn.Module:
        return copy.deepcopy(self.model).train()

    def training_data(self, split: Split) -> TrainingData:
        self.check_columns(split)
        return _training_data(self.encoding, split)

    # TabularAttributable
    def attribution_module(self) -> torch.nn.Module:
        return self.model

    def encode_features(self, frame: pd.DataFrame) -> np.ndarray:
        return self.encoding.transform(frame)

    def feature_columns(self) -> list[tuple[str, list[int]]]:
        out, start = [], 0
        for feature in self.encoding.features:
            width = 1 if feature["kind"] == "numeric" else len(feature["categories"])
            out.append((feature["name"], list(range(start, start + width))))
            start += width
        return out

    # Retrainable
    def trainable(self, data: AuditData, request: RetrainRequest, progress: ProgressReporter) -> Trainable:
        """A fresh MLP of the build settings (the default ones for a model built elsewhere)."""
        train, test = self.training_data(data.train), self.training_data(data.test)
        build = self.config.build
        hidden = build.hidden_sizes if build is not None else [64, 32]
        dropout = build.dropout if build is not None else 0.1
        seed_everything(request.seed)
        template = make_mlp(len(self.encoding.names), hidden, dropout, len(self.classes) or 2)
        return Trainable(lambda: copy.deepcopy(template).train(), train, test, "a fresh MLP of the build settings")


def _training_data(encoding: FeatureEncoding, split: Split) -> TrainingData:
    dataset = TensorDataset(torch.from_numpy(encoding.transform(split.frame)), torch.as_tensor(split.y))

    def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        if not items:
            return torch.zeros((0, dataset.tensors[0].shape[1])), torch.zeros(0, dtype=torch.long)
        return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items]).long()

    return TrainingData(dataset, collate)
