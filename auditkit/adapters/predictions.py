"""``predictions``: audit another system's predictions from a file, with no model at all.

The file (CSV, Parquet or JSONL; it may be the audit's ``data.path`` itself) holds an id, a
score (the positive class's probability) and/or a predicted label per row. Rows are matched to
the data by id. There is nothing to train, so nothing is held out: every data row is audited
(the train split is empty and ``data.split`` is ignored). Performance, fairness and baseline
gates work; auditors that need a model (explain, privacy) are refused at validate time.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from auditkit.adapters.base import ModelAdapter, Predictions, resolve_device
from auditkit.config import DataConfig, ModelConfigBase
from auditkit.data import Split, label_text, read_table
from auditkit.errors import AuditError
from auditkit.progress import ProgressReporter

NO_MODEL = "a predictions file has no model"


class PredictionsConfig(ModelConfigBase):
    adapter: Literal["predictions"]
    path: Path = Field(description="CSV, Parquet or JSONL of predictions, relative to the config; may be data.path.")
    id_column: str | None = Field(None, description="Id column of the file; default data.id_column.")
    score_column: str | None = Field(None, description="Column of the positive class's probability (0..1).")
    predicted_column: str | None = Field(
        None, description="Column of predicted labels (data.positive_label / negative_label values, or 1 / 0)."
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="Without predicted_column: positive when score >= this.")

    @model_validator(mode="after")
    def _something_to_audit(self) -> PredictionsConfig:
        if self.score_column is None and self.predicted_column is None:
            raise ValueError("give score_column, predicted_column or both")
        return self


class PredictionsAdapter(ModelAdapter):
    """Scores and/or predicted labels read from a file written by any system."""

    name = "predictions"
    Config = PredictionsConfig
    holds_out: ClassVar[bool] = False
    lacks: ClassVar[dict[str, str]] = {
        "attribute": f"{NO_MODEL} to perturb or differentiate",
        "retrain": f"{NO_MODEL} to retrain, and no training rows for a membership-inference attack",
    }

    def __init__(self, config: PredictionsConfig, path: Path, table: pd.DataFrame, digest: str) -> None:
        super().__init__(config.model_copy(update={"device": "cpu"}), path)
        self.device = resolve_device("cpu")
        self.table = table
        self.digest = digest

    @classmethod
    def check_data(cls, config: PredictionsConfig, data_config: DataConfig) -> None:  # type: ignore[override]
        if data_config.text is not None:  # edited texts would be "scored" with the file's unchanged scores
            raise AuditError(
                "data.text: the predictions adapter reads no text (a file cannot score edited texts); "
                "remove data.text and any fairness.counterfactual swaps"
            )
        if (config.id_column or data_config.id_column) is None and Path(config.path) != Path(data_config.path):
            raise AuditError(
                "model.id_column: a predictions file other than data.path is matched to the data by id; "
                "set data.id_column (and model.id_column if the file names it differently)"
            )

    @classmethod
    def load(cls, config: PredictionsConfig, data_config: DataConfig) -> PredictionsAdapter:  # type: ignore[override]
        path = Path(config.path)
        same = path == Path(data_config.path)  # the data file itself: read it the way the data is read
        frame, digest = read_table(path, data_config.format if same else None, data_config.sep if same else None)
        id_column = config.id_column or data_config.id_column
        for key, column in (
            ("model.id_column", id_column),
            ("model.score_column", config.score_column),
            ("model.predicted_column", config.predicted_column),
        ):
            if column is not None and column not in frame.columns:
                raise AuditError(f"{path}: column '{column}' (from {key}) is not in the predictions file")
        if id_column is None:  # the file is the data itself: rows match by position, as the data's ids do
            frame.index = pd.Index([f"row-{i}" for i in range(1, len(frame) + 1)])
        else:
            ids = frame[id_column].astype(str)
            if ids.duplicated().any():
                raise AuditError(f"{path}: id column '{id_column}' repeats '{ids[ids.duplicated()].iloc[0]}'")
            frame.index = pd.Index(ids)
        table = pd.DataFrame(index=frame.index)
        if config.score_column is not None:
            scores = pd.to_numeric(frame[config.score_column], errors="coerce")
            bad = scores.isna() | (scores < 0) | (scores > 1)
            if bad.any():
                raise AuditError(
                    f"{path}: score column '{config.score_column}' holds a value that is not a probability "
                    f"in [0, 1] (id {frame.index[bad.to_numpy()][0]}: {frame[config.score_column][bad].iloc[0]!r})"
                )
            table["score"] = scores.to_numpy(dtype=np.float64)
        if config.predicted_column is not None:
            table["predicted"] = _label_indices(frame[config.predicted_column], data_config, path, config)
        return cls(config, path, table, digest)

    def predict(self, split: Split, progress: ProgressReporter) -> Predictions:
        missing = ~split.frame.index.isin(self.table.index)
        if missing.any():
            raise AuditError(
                f"{self.model_dir}: no prediction for id '{split.ids[missing][0]}' "
                f"({int(missing.sum())} of {len(split)} data rows have none)"
            )
        rows = self.table.loc[split.frame.index]
        cfg = self.config
        if "predicted" in rows:
            y_pred = rows["predicted"].to_numpy(dtype=np.int64)
        else:
            y_pred = (rows["score"].to_numpy() >= cfg.threshold).astype(np.int64)  # type: ignore[attr-defined]
        # Without scores, the hard labels are the only scores there are: ROC AUC and calibration describe them.
        scores = rows["score"].to_numpy(np.float64) if "score" in rows else y_pred.astype(np.float64)
        return Predictions(split.ids, split.y, scores, y_pred, 0, None, split.classes)

    @property
    def model_sha256(self) -> str:
        return self.digest


def _label_indices(values: pd.Series, data_config: DataConfig, path: Path, config: PredictionsConfig) -> np.ndarray:
    """Predicted labels -> 1 / 0, written as the data's label values or as 1 / 0."""
    text = values.map(label_text)
    positive, negative = label_text(data_config.positive_label), label_text(data_config.negative_label)
    out = np.full(len(values), -1, dtype=np.int64)
    out[(text == positive).to_numpy() | (text == "1").to_numpy()] = 1
    out[(text == negative).to_numpy() | (text == "0").to_numpy()] = 0
    if positive in ("0", "1") or negative in ("0", "1"):  # the label values themselves are 0/1: no second reading
        out = np.where((text == positive).to_numpy(), 1, np.where((text == negative).to_numpy(), 0, -1))
    if (out < 0).any():
        raise AuditError(
            f"{path}: predicted column '{config.predicted_column}' holds {values[out < 0].iloc[0]!r}, which is "
            f"neither positive_label {positive!r} nor negative_label {negative!r} (nor 1 / 0)"
        )
    return out
