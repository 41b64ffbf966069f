"""What every attribution engine returns, and the completeness check they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# Step counts grow by ~1.5x so an example just above tolerance is not redone at twice the cost.
STEP_SCHEDULE = (16, 24, 32, 48, 64, 96, 128, 192, 256)
# Captum's names for the quadratures offered. Midpoint is the default: on the credit texts the IG
# integrand is a bump in the middle of the path and flat at both ends, where Gauss-Legendre spends
# its clustered nodes (benchmarks/results/explain.json). Captum's riemann_trapezoid is left out: in
# captum 0.9 its weights sum to 1 - 1/n.
CAPTUM_METHODS = {"midpoint": "riemann_middle", "gauss_legendre": "gausslegendre"}


@dataclass
class Attribution:
    """Attributions of one example over its units (words of a text, or tabular features)."""

    id: str
    target: Any  # the output explained: a class index, or what the engine understands, e.g. (word, tag id)
    units: list[str]  # words as they appear in the text, or feature names
    spans: list[tuple[int, int]] | None  # character spans of the words in the text
    scores: np.ndarray  # signed attribution per unit
    f_input: float  # F(x)
    f_baseline: float  # F(baseline)
    steps: int
    relative_delta: float  # |sum(scores) - (F(x) - F(baseline))| / |F(x) - F(baseline)|
    inputs: Any = field(default=None, repr=False)  # the engine's model input for this example
    unit_positions: list[list[int]] = field(default_factory=list, repr=False)  # input positions of each unit
    # Sampling engines: the largest unit's standard error of the mean divided by sum(|scores|) (absolute when
    # that sum is ~0): relative to the whole attribution, not to the unit's own score.
    relative_standard_error: float | None = None

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


def adaptive_steps(
    count: int,
    schedule: Sequence[int],
    tolerance: float,
    attribute_at: Callable[[np.ndarray, int], np.ndarray],
    advance: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Run every example at the schedule's first step count and redo, at the next count, only
    those whose completeness error is above tolerance. ``attribute_at(pending, steps)`` stores the
    pending examples' attributions and returns their relative deltas. Returns steps used and deltas."""
    steps_used = np.zeros(count, dtype=int)
    deltas = np.full(count, np.inf)
    pending = np.arange(count)
    for steps in schedule:
        if len(pending) == 0:
            break
        deltas[pending] = attribute_at(pending, steps)
        steps_used[pending] = steps
        advance(int((deltas[pending] <= tolerance).sum()))
        pending = pending[deltas[pending] > tolerance]
    advance(len(pending))
    return steps_used, deltas


@contextmanager
def input_gradients_only(model: torch.nn.Module) -> Iterator[None]:
    """IG needs gradients with respect to the inputs only: freezing the weights for the duration
    skips their gradient work (about 10% of a forward+backward on CPU)."""
    parameters = list(model.parameters())
    flags = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(parameters, flags, strict=True):
            p.requires_grad_(flag)


def default_token_budget(device: torch.device | str) -> int:
    """Tokens per forward/backward: large batches pay on a GPU; on CPU ~16 rows of ~120 tokens
    run about 10% faster per row than 64 (cache), measured on MiniLM."""
    return 16384 if torch.device(device).type == "cuda" else 2048
