"""Integrated Gradients for tabular models (any :class:`~auditkit.adapters.capabilities.TabularAttributable`).

Captum's IntegratedGradients on the encoded feature vector (midpoint or Gauss-Legendre quadrature),
the mean training encoding as baseline, adaptive steps; one-hot columns are summed back
into the feature they encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients

from auditkit.adapters.capabilities import TabularAttributable
from auditkit.data import AuditData, Split
from auditkit.explain.common import (
    CAPTUM_METHODS,
    STEP_SCHEDULE,
    Attribution,
    adaptive_steps,
    input_gradients_only,
    relative_delta,
)
from auditkit.explain.engines import EngineOptions, register_engine
from auditkit.progress import ProgressReporter


@register_engine(TabularAttributable)
class TabularIG:
    method = "integrated_gradients"
    units = "features"
    baseline_name = "mean_training_encoding"

    def __init__(
        self,
        adapter: TabularAttributable,
        train_frame: pd.DataFrame,
        *,
        target_output: str = "logit",
        rows_per_forward: int = 65536,
        quadrature: str = "midpoint",
    ) -> None:
        self.adapter = adapter
        self.model = adapter.attribution_module()
        self.target_output = target_output
        self.rows_per_forward = rows_per_forward
        self.quadrature = CAPTUM_METHODS[quadrature]
        self.baseline = adapter.encode_features(train_frame).mean(axis=0).astype(np.float32)
        groups = adapter.feature_columns()
        self.names = [name for name, _ in groups]
        self.columns: list[list[int]] = [columns for _, columns in groups]
        self.ig = IntegratedGradients(self._forward)

    @classmethod
    def create(cls, adapter: Any, data: AuditData, options: EngineOptions) -> TabularIG:
        return cls(adapter, data.train.frame, target_output=options.output, quadrature=options.quadrature)

    def explain(
        self,
        split: Split,
        positions: np.ndarray,
        targets: Sequence[int],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = STEP_SCHEDULE,
    ) -> tuple[list[Attribution], list[str | None]]:
        ids = split.ids[positions]
        frame = split.frame.iloc[positions]
        return self.attribute(ids, frame, targets, f_inputs, tolerance, progress, schedule), [None] * len(positions)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits if self.target_output == "logit" else torch.softmax(logits, dim=-1)

    def outputs(self, xs: Sequence[np.ndarray], targets: Sequence[int], probability: bool = False) -> np.ndarray:
        x = torch.from_numpy(np.stack(xs)).to(self.adapter.device)
        with torch.inference_mode():
            logits = self.model(x)
            values = torch.softmax(logits, -1) if probability or self.target_output != "logit" else logits
            return values[torch.arange(len(xs)), torch.as_tensor(list(targets))].cpu().double().numpy()

    def probabilities(self, xs: list[np.ndarray], targets: list[int]) -> np.ndarray:
        return self.outputs(xs, targets, probability=True)

    def perturb(self, attribution: Attribution, replace: np.ndarray) -> np.ndarray:
        x = np.array(attribution.inputs, copy=True)
        for k in np.flatnonzero(replace):
            x[self.columns[k]] = self.baseline[self.columns[k]]
        return x

    def attribute(
        self,
        ids: Sequence[str],
        frame: pd.DataFrame,
        targets: Sequence[int],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = STEP_SCHEDULE,
    ) -> list[Attribution]:
        x = self.adapter.encode_features(frame)
        rows = list(x)
        base = np.tile(self.baseline, (len(rows), 1))
        f_in = f_inputs if f_inputs is not None else self.outputs(rows, targets)
        f_base = self.outputs(list(base), targets)
        scores = np.zeros((len(rows), len(self.names)))
        device = self.adapter.device

        def attribute_at(pending: np.ndarray, steps: int) -> np.ndarray:
            encoded = (
                self.ig.attribute(
                    torch.from_numpy(x[pending]).to(device),
                    baselines=torch.from_numpy(base[pending]).to(device),
                    target=torch.as_tensor(np.asarray(targets)[pending], device=device),
                    n_steps=steps,
                    method=self.quadrature,
                    internal_batch_size=max(len(pending), self.rows_per_forward // steps),
                )
                .detach()
                .cpu()
                .double()
                .numpy()
            )
            scores[pending] = np.stack([encoded[:, cols].sum(axis=1) for cols in self.columns], axis=1)
            return relative_delta(scores[pending].sum(axis=1), f_in[pending], f_base[pending])

        with progress.task("Integrated gradients", total=len(rows)) as advance, input_gradients_only(self.model):
            steps_used, deltas = adaptive_steps(len(rows), schedule, tolerance, attribute_at, advance)
        values = frame[self.names].astype(str).to_numpy()
        return [
            Attribution(
                id=str(ids[i]),
                target=int(targets[i]),
                units=[f"{n}={v}" for n, v in zip(self.names, values[i], strict=True)],
                spans=None,
                scores=scores[i],
                f_input=float(f_in[i]),
                f_baseline=float(f_base[i]),
                steps=int(steps_used[i]),
                relative_delta=float(deltas[i]),
                inputs=rows[i],
                unit_positions=self.columns,
            )
            for i in range(len(rows))
        ]
