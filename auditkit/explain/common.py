"""What every attribution engine returns, and the completeness check they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP_SCHEDULE = (16, 32, 64, 128, 256)


@dataclass
class Attribution:
    """Attributions of one example over its units (words of a text, or tabular features)."""

    id: str
    target: int  # the output index explained
    units: list[str]  # words as they appear in the text, or feature names
    spans: list[tuple[int, int]] | None  # character spans of the words in the text
    scores: np.ndarray  # signed attribution per unit
    f_input: float  # F(x)
    f_baseline: float  # F(baseline)
    steps: int
    relative_delta: float  # |sum(scores) - (F(x) - F(baseline))| / |F(x) - F(baseline)|
    inputs: Any = field(default=None, repr=False)  # the engine's model input for this example
    unit_positions: list[list[int]] = field(default_factory=list, repr=False)  # input positions of each unit

    @property
    def total(self) -> float:
        return float(self.scores.sum())


def relative_delta(total: np.ndarray, f_input: np.ndarray, f_baseline: np.ndarray) -> np.ndarray:
    """Completeness error relative to the output change; absolute when the change is ~0."""
    change = f_input - f_baseline
    gap = np.abs(total - change)
    return np.where(np.abs(change) > 1e-6, gap / np.maximum(np.abs(change), 1e-12), gap)


def length_buckets(lengths: list[int], max_rows: int, token_budget: int) -> list[list[int]]:
    """Indices grouped by similar length: each bucket's rows x padded length stays within the budget."""
    order = np.argsort(lengths, kind="stable")
    buckets, current = [], []
    for index in order:
        width = lengths[index]  # sorted ascending, so the newest row is the widest
        if current and ((len(current) + 1) * width > token_budget or len(current) >= max_rows):
            buckets.append(current)
            current = []
        current.append(int(index))
    if current:
        buckets.append(current)
    return buckets
