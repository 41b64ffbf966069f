"""Rows collapsed into cells, and the multinomial bootstrap over them.

For any metric that is a function of per-group confusion counts, resampling N rows with
replacement is the same as drawing the cell counts of the finest partition
(groups x y x y_pred) from Multinomial(N, observed shares). That costs O(cells) per
replicate instead of O(rows), so 1000 replicates of a million rows take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

Y, PRED = "y", "y_pred"


@dataclass(frozen=True)
class CellTable:
    """One row per distinct combination of ``columns``; ``counts`` says how many rows share it."""

    keys: pd.DataFrame
    counts: np.ndarray  # (C,) int64
    row_cells: np.ndarray  # (N,) the cell of each input row

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, columns: Sequence[str]) -> CellTable:
        grouped = frame.groupby(list(columns), sort=True, observed=True, dropna=False)
        sizes = grouped.size()
        keys = sizes.index.to_frame(index=False)
        return cls(keys, sizes.to_numpy(dtype=np.int64), grouped.ngroup().to_numpy())

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def replicates(self, n_boot: int, rng: np.random.Generator) -> np.ndarray:
        """``(n_boot, C)`` cell counts of bootstrap resamples of the rows."""
        return rng.multinomial(self.n, self.counts / self.n, size=n_boot).astype(np.int64)

    def observed(self) -> np.ndarray:
        return self.counts[None, :]

    def group_codes(self, features: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Code of each cell's group under ``features`` (an intersection when several), and group names."""
        labels = self.keys[list(features)].astype(str).agg("*".join, axis=1)
        codes, names = pd.factorize(labels, sort=True)
        return codes, [str(n) for n in names]


@dataclass(frozen=True)
class Confusion:
    """Confusion counts per group, with a leading replicate axis: each array is ``(R, G)``."""

    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @classmethod
    def by_group(
        cls, counts: np.ndarray, codes: np.ndarray, n_groups: int, y: np.ndarray, y_pred: np.ndarray
    ) -> Confusion:
        """Sum cell counts ``(R, C)`` into per-group confusion counts, using cell labels ``y``, ``y_pred``."""
        onehot = np.zeros((len(codes), n_groups))
        onehot[np.arange(len(codes)), codes] = 1.0

        def total(mask: np.ndarray) -> np.ndarray:
            return counts[:, mask] @ onehot[mask]

        return cls(
            total((y == 1) & (y_pred == 1)),
            total((y == 0) & (y_pred == 1)),
            total((y == 0) & (y_pred == 0)),
            total((y == 1) & (y_pred == 0)),
        )

    def overall(self) -> Confusion:
        return Confusion(*(a.sum(axis=1, keepdims=True) for a in (self.tp, self.fp, self.tn, self.fn)))

    @property
    def n(self) -> np.ndarray:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> np.ndarray:
        return self.tp + self.fn

    @property
    def negatives(self) -> np.ndarray:
        return self.tn + self.fp

    @property
    def predicted_positives(self) -> np.ndarray:
        return self.tp + self.fp
