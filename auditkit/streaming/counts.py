"""Group-by counts of a prediction table, one record batch at a time.

A batch becomes :class:`PredictionCounts`: per finest group (one value of every sensitive
feature) the confusion cells ``[y, y_pred]`` and a histogram of scores per label. Counts add,
so batches, files and cluster partitions are counted apart and summed; the sum is exactly
what grouping the whole table in memory gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from auditkit.data import label_text
from auditkit.errors import AuditError
from auditkit.execution.base import Executor, InProcessExecutor
from auditkit.predictions import BasePredictions
from auditkit.stats.cells import PRED, CellTable, Y
from auditkit.streaming.source import open_dataset, require_columns

DEFAULT_BINS = 16384
#: Most groups (combinations of every sensitive feature's values) counted: each keeps a score
#: histogram per label (2 x 16,384 x 8 bytes = 256 KiB), so 4,096 groups hold 1 GiB.
MAX_GROUPS = 4096


@dataclass(frozen=True)
class CountSpec:
    """Which columns hold what; labels are mapped to 1 (positive) and 0 (negative)."""

    features: tuple[str, ...]
    label: str
    positive_label: str | int | bool
    negative_label: str | int | bool
    score: str | None  # the positive class's probability; None: the predicted labels are the scores
    y_pred: str | None = None  # predicted labels (the label values or 1 / 0); default: score >= threshold
    threshold: float = 0.5
    bins: int = DEFAULT_BINS
    source: str = "predictions"  # names the input in error messages

    def __post_init__(self) -> None:
        if self.score is None and self.y_pred is None:
            raise ValueError("a CountSpec needs a score column, a predicted-label column or both")

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.features, self.label, *(c for c in (self.score, self.y_pred) if c)]))


@dataclass
class PredictionCounts:
    """Counts per finest group: ``cells[g, y, y_pred]`` and ``hist[g, y, bin]`` of the scores."""

    features: tuple[str, ...]
    bins: int
    groups: list[tuple[str, ...]] = field(default_factory=list)
    cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2), np.int64))
    hist: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.hist is None:
            self.hist = np.zeros((len(self.groups), 2, self.bins), np.int64)

    @property
    def n(self) -> int:
        return int(self.cells.sum())

    def add(self, other: PredictionCounts) -> PredictionCounts:
        """Sum of two counts (in place on self, which is returned)."""
        assert self.hist is not None and other.hist is not None
        index = {g: i for i, g in enumerate(self.groups)}
        new = [g for g in other.groups if g not in index]
        _check_groups(len(self.groups) + len(new), self.features)
        if new:
            self.groups.extend(new)
            index.update({g: i for i, g in enumerate(self.groups)})
            self.cells = np.concatenate([self.cells, np.zeros((len(new), 2, 2), np.int64)])
            self.hist = np.concatenate([self.hist, np.zeros((len(new), 2, self.bins), np.int64)])
        rows = np.array([index[g] for g in other.groups], dtype=np.int64)
        np.add.at(self.cells, rows, other.cells)
        np.add.at(self.hist, rows, other.hist)
        return self

    def sorted(self) -> PredictionCounts:
        """Groups in sorted order, as a pandas group-by lists them."""
        order = sorted(range(len(self.groups)), key=self.groups.__getitem__)
        assert self.hist is not None
        return PredictionCounts(
            self.features, self.bins, [self.groups[i] for i in order], self.cells[order], self.hist[order]
        )

    def marginal(self, features: list[str]) -> PredictionCounts:
        """The counts of coarser groups: only ``features``, in that order."""
        assert self.hist is not None
        pick = [self.features.index(f) for f in features]
        out = PredictionCounts(tuple(features), self.bins)
        out.add(
            PredictionCounts(
                tuple(features), self.bins, [tuple(g[i] for i in pick) for g in self.groups], self.cells, self.hist
            )
        )
        return out

    def cell_table(self) -> CellTable:
        """The :class:`CellTable` of ``features + [y, y_pred]`` that grouping the rows would give
        (its ``row_cells`` is empty: there are no rows in memory)."""
        counts = self.sorted()
        g, y, p = np.nonzero(counts.cells)
        keys = pd.DataFrame([counts.groups[i] for i in g], columns=list(self.features))
        if len(g) == 0:
            keys = pd.DataFrame(columns=list(self.features))
        keys[Y] = y.astype(np.int64)
        keys[PRED] = p.astype(np.int64)
        return CellTable(keys, counts.cells[g, y, p].astype(np.int64), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class CountedPredictions(BasePredictions):
    """What a count-capable adapter gives for a streamed split instead of rows: the counts of every
    (group of all sensitive features, label, prediction) cell and the score histograms. The
    performance and fairness auditors compute from these; nothing else needs the rows."""

    counts: PredictionCounts
    classes: tuple[str, ...]  # (negative, positive)
    source: str  # the file or folder counted
    engine: str  # the executor that read it (in_process: pyarrow; ray: Ray Data)
    n_truncated: int = 0  # nothing is truncated: kept so callers of Predictions read the same field

    n_classes = 2

    def __len__(self) -> int:
        return self.counts.n

    def overall(self) -> tuple[np.ndarray, np.ndarray]:
        """The confusion cells ``[y, y_pred]`` and the score histograms ``[y, bin]`` of all rows."""
        assert self.counts.hist is not None
        return self.counts.cells.sum(axis=0), self.counts.hist.sum(axis=0)


def batch_counts(batch: pa.RecordBatch | pa.Table, spec: CountSpec) -> PredictionCounts:
    """Counts of one batch of rows."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    n = table.num_rows
    y = _labels(table.column(spec.label), spec)
    scores = _scores(table.column(spec.score), spec) if spec.score else None
    if spec.y_pred:
        y_pred = _labels(table.column(spec.y_pred), spec, predicted=True)
    else:
        assert scores is not None
        y_pred = (scores >= spec.threshold).astype(np.int64)
    if scores is None:  # hard labels only: they are the scores ROC AUC describes, as in memory
        scores = y_pred.astype(np.float64)
    bins = np.minimum((scores * spec.bins).astype(np.int64), spec.bins - 1)
    key = np.zeros(n, dtype=np.int64)
    vocabularies = []
    for feature in spec.features:
        codes, vocabulary = _codes(table.column(feature), feature, spec)
        key = key * len(vocabulary) + codes
        vocabularies.append(vocabulary)
    local, group_of_row = np.unique(key, return_inverse=True)
    _check_groups(len(local), spec.features)
    groups = []
    for k in local:  # undo the mixed radix: the values of each local group
        values = []
        for vocabulary in reversed(vocabularies):
            k, code = divmod(int(k), len(vocabulary))
            values.append(vocabulary[code])
        groups.append(tuple(reversed(values)))
    g = len(groups)
    cells = np.bincount(group_of_row * 4 + y * 2 + y_pred, minlength=4 * g).reshape(g, 2, 2)
    hist = np.bincount((group_of_row * 2 + y) * spec.bins + bins, minlength=g * 2 * spec.bins)
    return PredictionCounts(spec.features, spec.bins, groups, cells.astype(np.int64), hist.reshape(g, 2, spec.bins))


def _check_groups(n: int, features: tuple[str, ...]) -> None:
    if n > MAX_GROUPS:
        raise AuditError(
            f"the sensitive features {', '.join(features)} take more than {MAX_GROUPS} combinations of values; "
            "a streamed audit keeps a score histogram for each: slice by fewer or coarser features"
        )


def _codes(column: pa.ChunkedArray, name: str, spec: CountSpec, raw: bool = False) -> tuple[np.ndarray, list]:
    """Integer codes of a column's values and the values as strings (what ``astype(str)`` gives),
    or as Python values when ``raw``."""
    if column.null_count:
        raise AuditError(f"column '{name}' has {column.null_count} missing values")
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(column, pa.ChunkedArray):  # an empty chunked array
        return np.zeros(0, dtype=np.int64), [""]
    values = column.dictionary.to_pylist() if raw else [str(v) for v in column.dictionary.to_pylist()]
    values = values or [""]
    return column.indices.to_numpy(zero_copy_only=False).astype(np.int64), values


def _scores(column: pa.ChunkedArray, spec: CountSpec) -> np.ndarray:
    """The score column as float64, checked in every batch: numbers in [0, 1], none missing."""
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise AuditError(f"column '{spec.score}' holds {column.type}, not numbers (probabilities)")
    scores = column.to_numpy().astype(np.float64, copy=False)
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        raise AuditError(
            f"column '{spec.score}' must hold probabilities in [0, 1], no missing values (found {scores[bad][0]})"
        )
    return scores


def _labels(column: pa.ChunkedArray, spec: CountSpec, predicted: bool = False) -> np.ndarray:
    """1 for the positive label, 0 for the negative one, compared as text the way the in-memory data
    is read (``label_text``, once per distinct value); predicted labels may also be 1 / 0 unless the
    labels themselves are 0/1. Anything else is an error naming the column and the value."""
    name = spec.y_pred if predicted else spec.label
    if column.null_count:
        raise AuditError(f"column '{name}' has {column.null_count} missing values")
    positive, negative = label_text(spec.positive_label), label_text(spec.negative_label)
    codes, values = _codes(column, str(name), spec, raw=True)
    text = [label_text(v) for v in values]
    extra = {"1": 1, "0": 0} if predicted and not {positive, negative} & {"0", "1"} else {}
    known = {**extra, positive: 1, negative: 0}
    mapped = np.array([known.get(v, -1) for v in text], np.int64)
    bad = mapped[codes] < 0
    if bad.any():
        also = " (nor 1 / 0)" if extra else ""
        raise AuditError(f"column '{name}' holds '{text[codes[bad][0]]}', neither '{positive}' nor '{negative}'{also}")
    return mapped[codes]


def dataset(path: str | Path, spec: CountSpec) -> ds.Dataset:
    """A Parquet file or a folder of Parquet files, each file checked for the columns ``spec`` reads."""
    data = open_dataset(Path(path), spec.source)
    require_columns(data, dict.fromkeys(spec.columns, spec.source))
    return data


def count_predictions(path: str | Path, spec: CountSpec, executor: Executor | None = None) -> PredictionCounts:
    """Counts of a Parquet file or folder in one streaming pass: batch by batch with pyarrow in
    this process, or with Ray Data on a cluster when ``executor`` is a Ray one."""
    dataset(path, spec)
    executor = executor or InProcessExecutor()
    total = executor.fold_parquet(path, spec.columns, partial(batch_counts, spec=spec), PredictionCounts.add)
    return total if total is not None else PredictionCounts(spec.features, spec.bins)
