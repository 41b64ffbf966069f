"""Shapley value sampling for black-box models (any :class:`~auditkit.adapters.capabilities.FeatureAttributable`).

Captum's ShapleyValueSampling over the model's data columns. A row is encoded as one number per
column (the value itself for numbers, an index into the column's values for the rest), so
Captum can swap a column for the baseline's and the model reads a real row back. The baseline
is the training split's median (numbers) and most frequent value (the rest).

Efficiency holds exactly for every sampled permutation (the marginal contributions telescope
from F(baseline) to F(x)), so the completeness error only shows rounding (Captum accumulates
in float32: about 1e-7 relative). What sampling
leaves uncertain is each feature's value: permutations run in batches, the standard error
across batch means measures it, and examples get more permutations until the largest feature's
standard error, divided by the attributions' total magnitude (``relative_standard_error``), is within tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from captum.attr import ShapleyValueSampling

from auditkit.adapters.capabilities import FeatureAttributable
from auditkit.data import AuditData, Split
from auditkit.explain.common import Attribution, adaptive_steps, relative_delta
from auditkit.explain.engines import EngineOptions, register_engine
from auditkit.progress import ProgressReporter

#: Total permutations an example may reach; each stage adds batches of BATCH permutations.
PERMUTATION_SCHEDULE = (32, 64, 128, 256, 512, 1024)
BATCH = 8
EPS = 1e-12


class RowCodec:
    """Rows of data columns <-> float vectors: numbers as themselves, other values as indices."""

    def __init__(self, columns: list[str], frames: Sequence[pd.DataFrame]) -> None:
        self.columns = columns
        both = pd.concat([f[columns] for f in frames if len(f)], axis=0)
        self.numeric = {
            c: pd.api.types.is_numeric_dtype(both[c]) and not pd.api.types.is_bool_dtype(both[c]) for c in columns
        }
        self.values = {c: pd.unique(both[c]) for c in columns if not self.numeric[c]}
        self.dtypes = {c: both[c].dtype for c in columns}

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        for j, c in enumerate(self.columns):
            if self.numeric[c]:
                out[:, j] = frame[c].to_numpy(dtype=np.float64)
            else:
                codes = pd.Index(self.values[c]).get_indexer(frame[c])
                if (codes < 0).any():  # a value unseen in train and test: extend the table
                    self.values[c] = pd.unique(np.concatenate([self.values[c], frame[c].to_numpy()]))
                    codes = pd.Index(self.values[c]).get_indexer(frame[c])
                out[:, j] = codes
        return out

    def decode(self, x: np.ndarray) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, c in enumerate(self.columns):
            if self.numeric[c]:
                column = x[:, j]
                integer = pd.api.types.is_integer_dtype(self.dtypes[c]) and np.all(np.isfinite(column))
                data[c] = column.astype(self.dtypes[c]) if integer else column
            else:
                data[c] = np.asarray(self.values[c], dtype=object)[x[:, j].astype(np.int64)]
        return pd.DataFrame(data)

    def baseline(self, frame: pd.DataFrame) -> np.ndarray:
        """Median of each numeric column, most frequent value of the others (ties: first seen)."""
        row = {}
        for c in self.columns:
            if self.numeric[c]:
                row[c] = float(pd.to_numeric(frame[c]).median())
            else:
                row[c] = frame[c].value_counts(dropna=False, sort=True).index[0]
        return self.encode(pd.DataFrame([row]))[0]


@register_engine(FeatureAttributable)
class ShapleySampling:
    method = "shapley_value_sampling"
    units = "features"
    baseline_name = "training median (numeric columns) and most frequent value (other columns)"
    schedule = PERMUTATION_SCHEDULE

    def __init__(
        self, adapter: FeatureAttributable, data: AuditData, *, target_output: str = "logit", seed: int = 0
    ) -> None:
        self.adapter = adapter
        self.names = adapter.input_columns()
        reference = data.train if len(data.train) else data.test
        self.codec = RowCodec(self.names, [data.train.frame, data.test.frame])
        self.baseline = self.codec.baseline(reference.frame)
        self.target_output = target_output
        self.seed = seed
        self.sampler = ShapleyValueSampling(self._forward)

    @classmethod
    def create(cls, adapter: Any, data: AuditData, options: EngineOptions) -> ShapleySampling:
        return cls(adapter, data, target_output=options.output)

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict_frame(self.codec.decode(x))

    def _transform(self, p: np.ndarray) -> np.ndarray:
        """Probability, or its log-odds (the binary logit) for output ``logit``."""
        if self.target_output != "logit":
            return p
        q = np.clip(p, EPS, 1 - EPS)
        return np.log(q) - np.log1p(-q)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._transform(self._probabilities(x.detach().cpu().numpy())))

    def outputs(self, xs: np.ndarray, targets: Sequence[int]) -> np.ndarray:
        return self._transform(self._probabilities(xs))[np.arange(len(xs)), np.asarray(targets)]

    def probabilities(self, xs: list[np.ndarray], targets: list[int]) -> np.ndarray:
        return self._probabilities(np.stack(xs))[np.arange(len(xs)), np.asarray(targets)]

    def perturb(self, attribution: Attribution, replace: np.ndarray) -> np.ndarray:
        x = np.array(attribution.inputs, copy=True)
        flagged = np.flatnonzero(replace)
        x[flagged] = self.baseline[flagged]
        return x

    def explain(
        self,
        split: Split,
        positions: np.ndarray,
        targets: Sequence[int],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = PERMUTATION_SCHEDULE,
    ) -> tuple[list[Attribution], list[str | None]]:
        """``schedule`` is the gradient engines' step schedule and does not apply: permutations
        follow :data:`PERMUTATION_SCHEDULE`; ``f_inputs`` are recomputed (they need the same output)."""
        frame = split.frame.iloc[positions]
        attributions = self.attribute(split.ids[positions], frame, targets, tolerance, progress)
        return attributions, [None] * len(positions)

    def attribute(
        self,
        ids: Sequence[str],
        frame: pd.DataFrame,
        targets: Sequence[int],
        tolerance: float,
        progress: ProgressReporter,
        permutations: Sequence[int] = PERMUTATION_SCHEDULE,
    ) -> list[Attribution]:
        x = self.codec.encode(frame)
        n, d = x.shape
        target = np.asarray(targets, dtype=np.int64)
        f_in = self.outputs(x, target)
        f_base = self.outputs(np.tile(self.baseline, (n, 1)), target)
        batches: list[list[np.ndarray]] = [[] for _ in range(n)]  # per example, one estimate per batch
        estimates = np.zeros((n, d))
        errors = np.full(n, np.inf)

        def attribute_at(pending: np.ndarray, total: int) -> np.ndarray:
            while len(batches[pending[0]]) * BATCH < total:
                index = len(batches[pending[0]])
                with torch.random.fork_rng():
                    torch.manual_seed(self.seed * 100_003 + index)  # batch k: the same permutations at any run
                    values = self.sampler.attribute(
                        torch.from_numpy(x[pending]),
                        baselines=torch.from_numpy(self.baseline)[None, :],
                        target=torch.from_numpy(target[pending]),
                        n_samples=BATCH,
                        perturbations_per_eval=d,
                    )
                for row, value in zip(pending, values.double().numpy(), strict=True):
                    batches[row].append(value)
            for row in pending:
                stack = np.stack(batches[row])
                estimates[row] = stack.mean(axis=0)
                errors[row] = convergence(stack)
            return errors[pending]

        with progress.task("Shapley value sampling", total=n) as advance:
            used, _ = adaptive_steps(n, permutations, tolerance, attribute_at, advance)
        deltas = relative_delta(estimates.sum(axis=1), f_in, f_base)
        values = frame[self.names].astype(str).to_numpy()
        return [
            Attribution(
                id=str(ids[i]),
                target=int(target[i]),
                units=[f"{c}={v}" for c, v in zip(self.names, values[i], strict=True)],
                spans=None,
                scores=estimates[i],
                f_input=float(f_in[i]),
                f_baseline=float(f_base[i]),
                steps=int(used[i]),
                relative_delta=float(deltas[i]),
                inputs=x[i],
                unit_positions=[[j] for j in range(d)],
                relative_standard_error=float(errors[i]),
            )
            for i in range(n)
        ]


def convergence(batch_estimates: np.ndarray) -> float:
    """Largest feature's standard error of the mean across permutation batches, relative to the
    attributions' total magnitude (absolute when that is ~0)."""
    k = len(batch_estimates)
    if k < 2:
        return float("inf")
    mean = batch_estimates.mean(axis=0)
    se = batch_estimates.std(axis=0, ddof=1) / np.sqrt(k)
    scale = np.abs(mean).sum()
    return float(se.max() / scale) if scale > 1e-6 else float(se.max())
