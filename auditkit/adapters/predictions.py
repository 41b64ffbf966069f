"""``predictions``: audit another system's predictions from a file, with no model at all.

The file (CSV, Parquet or JSONL; it may be the audit's ``data.path`` itself) holds an id, a
score (the positive class's probability) and/or a predicted label per row. Rows are matched to
the data by id. There is nothing to train, so nothing is held out: every data row is audited
(the train split is empty and ``data.split`` is ignored). Performance, fairness and baseline
gates work; auditors that need a model (explain, privacy) are refused at validate time.

With ``data.streaming`` the file is a Parquet file or folder too large for memory that holds the
labels, sensitive features and predictions alike: the adapter never loads it but counts it
(:class:`~auditkit.adapters.capabilities.CountScorer`), and performance and fairness run on the counts.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, model_validator

from auditkit.adapters.base import ModelAdapter, resolve_device
from auditkit.adapters.capabilities import CountScorer
from auditkit.adapters.outputs import check_scores
from auditkit.config import DataConfig, ModelConfigBase
from auditkit.data import AuditData, Split, label_text, read_table
from auditkit.errors import AuditError
from auditkit.execution.base import Executor
from auditkit.predictions import Predictions
from auditkit.progress import ProgressReporter
from auditkit.streaming.counts import CountedPredictions, CountSpec, count_predictions
from auditkit.streaming.source import StreamedSplit, files_sha256, open_dataset, require_columns

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
    max_unmatched_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Largest share of ids without a partner, in each direction: data rows with no prediction "
        "(of the data's rows; left out of the audit) and predictions with no data row (of the file's rows; "
        "ignored). Both are counted in the report's notes. Default 0: every id must match.",
    )

    @model_validator(mode="after")
    def _something_to_audit(self) -> PredictionsConfig:
        if self.score_column is None and self.predicted_column is None:
            raise ValueError("give score_column, predicted_column or both")
        return self


class PredictionsAdapter(ModelAdapter, CountScorer):
    """Scores and/or predicted labels read from a file written by any system."""

    name = "predictions"
    Config = PredictionsConfig
    holds_out: ClassVar[bool] = False
    lacks: ClassVar[dict[str, str]] = {
        "attribute": f"{NO_MODEL} to perturb or differentiate",
        "retrain": f"{NO_MODEL} to retrain, and no training rows for a membership-inference attack",
    }

    def __init__(
        self, config: PredictionsConfig, path: Path, table: pd.DataFrame | None, digest: str, spec: CountSpec | None
    ) -> None:
        super().__init__(config.model_copy(update={"device": "cpu"}), path)
        self.device = resolve_device("cpu")
        self.table = table  # in memory; None when streamed
        self.digest = digest
        self.spec = spec  # streamed: what the counting pass reads
        self._counted: CountedPredictions | None = None
        self.match_note = ""  # ids left unmatched within max_unmatched_share, set by match_data

    @classmethod
    def check_data(cls, config: PredictionsConfig, data_config: DataConfig) -> None:  # type: ignore[override]
        if data_config.task != "binary":  # one score column holds one class's probability
            raise AuditError(
                f"data.task: the predictions adapter reads binary predictions (one score column); task "
                f"{data_config.task} needs a model adapter (sklearn, onnx, hf-text, torch-tabular)"
            )
        if data_config.text is not None:  # edited texts would be "scored" with the file's unchanged scores
            raise AuditError(
                "data.text: the predictions adapter reads no text (a file cannot score edited texts); "
                "remove data.text and any fairness.counterfactual swaps"
            )
        if data_config.streaming and Path(config.path) != Path(data_config.path):
            raise AuditError(
                f"model.path: a streamed audit (data.streaming) reads the predictions from the data's own rows; "
                f"set model.path to data.path ({data_config.path})"
            )
        if data_config.streaming and config.max_unmatched_share:
            raise AuditError(
                "model.max_unmatched_share: a streamed audit reads its predictions from the data's own rows, "
                "so no id goes unmatched; remove the setting"
            )
        if (config.id_column or data_config.id_column) is None and Path(config.path) != Path(data_config.path):
            raise AuditError(
                "model.id_column: a predictions file other than data.path is matched to the data by id; "
                "set data.id_column (and model.id_column if the file names it differently)"
            )

    @classmethod
    def load(cls, config: PredictionsConfig, data_config: DataConfig) -> PredictionsAdapter:  # type: ignore[override]
        path = Path(config.path)
        if data_config.streaming:
            return cls._load_streamed(config, data_config)
        same = path == Path(data_config.path)  # the data file itself: read it the way the data is read
        id_column = config.id_column or data_config.id_column
        frame, digest = read_table(
            path, data_config.format if same else None, data_config.sep if same else None, id_column
        )
        for key, column in (
            ("model.id_column", id_column),
            ("model.score_column", config.score_column),
            ("model.predicted_column", config.predicted_column),
        ):
            if column is not None and column not in frame.columns:
                raise AuditError(f"{path}: column '{column}' (from {key}) is not in the predictions file")
        if frame.empty:  # a header and no row: every data row would go unmatched
            raise AuditError(f"{path}: the predictions file has columns but no rows")
        if id_column is None:  # the file is the data itself: rows match by position, as the data's ids do
            frame.index = pd.Index([f"row-{i}" for i in range(1, len(frame) + 1)])
        else:
            empty = frame[id_column].isna().to_numpy()
            if empty.any():
                raise AuditError(
                    f"{path}: id column '{id_column}' is empty in {int(empty.sum())} rows "
                    f"(first at row {int(empty.argmax()) + 1} of the file)"
                )
            ids = frame[id_column].astype(str)
            if ids.duplicated().any():
                raise AuditError(f"{path}: id column '{id_column}' repeats '{ids[ids.duplicated()].iloc[0]}'")
            frame.index = pd.Index(ids)
        table = pd.DataFrame(index=frame.index)
        if config.score_column is not None:
            raw = frame[config.score_column]
            scores = pd.to_numeric(raw, errors="coerce")
            text = scores.isna() & raw.notna()
            if text.any():
                raise AuditError(
                    f"{path}: score column '{config.score_column}' holds {raw[text].iloc[0]!r} (id "
                    f"{frame.index[text.to_numpy()][0]}), which is not a number: expected probabilities in [0, 1]"
                )
            what = f"{path}: score column '{config.score_column}'"
            table["score"] = check_scores(scores.to_numpy(dtype=np.float64), frame.index, what)
        if config.predicted_column is not None:
            table["predicted"] = _label_indices(frame[config.predicted_column], data_config, path, config)
        return cls(config, path, table, digest, None)

    @classmethod
    def _load_streamed(cls, config: PredictionsConfig, data_config: DataConfig) -> PredictionsAdapter:
        """Check every file's footer for the prediction columns and the scores' type; read no row."""
        path = Path(config.path)
        data = open_dataset(path, "model.path")
        columns = {
            c: f"model.{k}"
            for k, c in (("score_column", config.score_column), ("predicted_column", config.predicted_column))
            if c
        }
        require_columns(data, columns)
        if config.score_column is not None:
            for fragment in data.get_fragments():
                kind = fragment.physical_schema.field(config.score_column).type
                if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
                    raise AuditError(f"{fragment.path}: score column '{config.score_column}' holds {kind}, not numbers")
        assert data_config.label is not None and data_config.positive_label is not None
        assert data_config.negative_label is not None
        spec = CountSpec(
            tuple(data_config.sensitive_features),
            data_config.label,
            data_config.positive_label,
            data_config.negative_label,
            config.score_column,
            config.predicted_column,
            config.threshold,
            source="data.path",
        )
        return cls(config, path, None, files_sha256(path, tuple(data.files)), spec)

    def count(self, split: StreamedSplit, executor: Executor, progress: ProgressReporter) -> CountedPredictions:
        if self.spec is None:
            raise AuditError("model.path: this predictions file was read into memory; set data.streaming to count it")
        counts = count_predictions(split.path, self.spec, executor)
        self._counted = CountedPredictions(counts, split.classes, str(split.path), executor.name)
        return self._counted

    def match_data(self, data: AuditData) -> AuditData:
        """Join the file to the data by id over every row, in both directions (see ``max_unmatched_share``).

        A streamed audit reads its predictions from the data's own rows: it joins nothing. With nothing held
        out, ``data.test`` holds every data row.
        """
        if self.table is None or isinstance(data.test, StreamedSplit):
            return data
        rows = data.test.frame.index
        no_prediction = ~rows.isin(self.table.index)
        no_row = ~self.table.index.isin(rows)
        share = self.config.max_unmatched_share
        found = []
        for ids, among, what, fix in (
            (rows[no_prediction], len(rows), "data rows have no prediction", "left out of the audit"),
            (self.table.index[no_row], len(self.table), "predictions have no data row", "ignored"),
        ):
            if not len(ids):
                continue
            counted = f"{len(ids)} of {among} {what} (first ids {first_ids(ids)})"
            if len(ids) / among > share:
                raise AuditError(
                    f"{self.model_dir}: {counted}; check data.id_column and model.id_column, or allow a share "
                    f"with model.max_unmatched_share (now {share:g})"
                )
            found.append(f"{counted}, {fix}")
        if no_prediction.all():
            raise AuditError(f"{self.model_dir}: no data row has a prediction (first data ids {first_ids(rows)})")
        if found:
            self.match_note = (
                f"Predictions joined to the data by id: {'; '.join(found)} (model.max_unmatched_share {share:g})."
            )
        if not no_prediction.any():
            return data
        return replace(data, test=data.test.subset(np.flatnonzero(~no_prediction)))

    def input_notes(self) -> list[str]:
        if self._counted is None:
            return [self.match_note] if self.match_note else []
        how = "Ray Data" if self._counted.engine == "ray" else "pyarrow, one batch at a time"
        return [
            f"Streamed audit: the {len(self._counted)} rows of {self._counted.source} were counted in one pass "
            f"({how}) and never loaded. ROC AUC comes from {self.spec.bins if self.spec else 0}-bin score "
            "histograms, its largest binning error stated beside it; predictions.csv is not written (the "
            "rows are the Parquet data itself) and baseline gates compare intervals, not paired rows."
        ]

    def predict(self, split: Split, progress: ProgressReporter) -> Predictions:
        if self.table is None:
            raise AuditError("data.streaming: a streamed dataset is counted, not scored row by row")
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


def first_ids(ids: pd.Index, shown: int = 3) -> str:
    """The first ``shown`` ids, quoted, for a message."""
    quoted = ", ".join(repr(str(i)) for i in ids[:shown])
    return quoted + (", ..." if len(ids) > shown else "")


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
