"""Integrated Gradients for text models (any :class:`~auditkit.adapters.capabilities.TextAttributable`).

Captum's LayerIntegratedGradients on the input embeddings (midpoint or Gauss-Legendre quadrature),
many examples x steps per forward/backward (bucketed by length, never padded to the
maximum), and adaptive steps: every example starts cheap and only those whose
completeness error is above tolerance are redone with more steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from auditkit.adapters.capabilities import TextAttributable, TokenAttributable
from auditkit.data import AuditData, Split
from auditkit.explain.common import (
    CAPTUM_METHODS,
    STEP_SCHEDULE,
    Attribution,
    adaptive_steps,
    default_token_budget,
    input_gradients_only,
    length_buckets,
    relative_delta,
)
from auditkit.explain.engines import EngineOptions, register_engine
from auditkit.progress import ProgressReporter
from auditkit.tokens import EncodedText, pad


@dataclass
class Integrated:
    """Per-token attributions of some rows and how well each adds up to F(x) - F(baseline)."""

    scores: list[np.ndarray]
    f_input: np.ndarray
    f_baseline: np.ndarray
    steps: np.ndarray
    deltas: np.ndarray


@register_engine(TextAttributable)
class TextIG:
    method = "integrated_gradients"
    units = "words"

    def __init__(
        self,
        adapter: TextAttributable | TokenAttributable,
        *,
        target_output: str = "logit",
        baseline_token: str = "pad",
        token_budget: int | None = None,
        max_rows: int = 64,
        quadrature: str = "midpoint",
    ) -> None:
        self.adapter = adapter
        self.model = adapter.attribution_module()
        self.target_output = target_output
        self.token_budget = token_budget or default_token_budget(adapter.device)
        self.max_rows = max_rows
        self.quadrature = CAPTUM_METHODS[quadrature]
        token = adapter.token_id(baseline_token)
        if token is None:
            raise ValueError(f"the tokenizer has no {baseline_token} token")
        self.baseline_id = int(token)
        self.baseline_name = baseline_token
        self.pad_id = int(adapter.token_id("pad") or 0)
        self.lig = LayerIntegratedGradients(self._forward, adapter.embedding_layer())

    @classmethod
    def create(cls, adapter: Any, data: AuditData, options: EngineOptions) -> TextIG:
        return cls(
            adapter,
            target_output=options.output,
            baseline_token=options.baseline_token,
            token_budget=options.token_budget,
            quadrature=options.quadrature,
        )

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
        if split.texts is None:
            raise ValueError("text attributions need the split's texts (data.text)")
        texts: list[str | None] = [split.texts[i] for i in positions]
        ids = split.ids[positions]
        return self.attribute(ids, texts, targets, f_inputs, tolerance, progress, schedule), texts  # type: ignore[arg-type]

    def _forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, where: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = self._select(self.model(input_ids, attention_mask), where)
        return logits if self.target_output == "logit" else torch.softmax(logits, dim=-1)

    def _select(self, logits: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:
        """(rows, outputs) explained per row: a sequence classifier's logits as they are. ``where`` (one
        position per row) is for engines whose model scores every position, such as the token engine."""
        return logits

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        return self.adapter.encode_words(texts)

    def baseline_ids(self, ids: Sequence[int]) -> list[int]:
        """Same length; special tokens kept; every other token replaced by the baseline token."""
        special = self.adapter.special_tokens_mask(ids)
        return [t if s else self.baseline_id for t, s in zip(ids, special, strict=True)]

    def scored(
        self, rows: Sequence[Sequence[int]], where: Sequence[int] | None = None
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(bucket, (rows, outputs) logits) over length buckets of ``rows``, without gradients."""
        device = self.adapter.device
        with torch.inference_mode():
            for bucket in length_buckets([len(r) for r in rows], self.max_rows * 4, self.token_budget * 4):
                ids, mask = pad([rows[i] for i in bucket], self.pad_id)
                at = None if where is None else torch.as_tensor([where[i] for i in bucket], device=device)
                yield bucket, self._select(self.model(ids.to(device), mask.to(device)), at)

    def outputs(
        self,
        rows: Sequence[Sequence[int]],
        targets: Sequence[int],
        probability: bool = False,
        where: Sequence[int] | None = None,
    ) -> np.ndarray:
        """F(rows) for the targets (or the targets' probabilities), in length buckets, without gradients."""
        out = np.empty(len(rows))
        for bucket, logits in self.scored(rows, where):
            values = torch.softmax(logits, -1) if probability or self.target_output != "logit" else logits
            chosen = values[torch.arange(len(bucket)), torch.as_tensor([targets[i] for i in bucket])]
            out[bucket] = chosen.cpu().double().numpy()
        return out

    def probabilities(self, rows: list[list[int]], targets: list[int]) -> np.ndarray:
        return self.outputs(rows, targets, probability=True)

    def perturb(self, attribution: Attribution, replace: np.ndarray) -> list[int]:
        """The example's token ids with the flagged words' tokens set to the baseline token."""
        ids = list(attribution.inputs)
        for k in np.flatnonzero(replace):
            for position in attribution.unit_positions[k]:
                ids[position] = self.baseline_id
        return ids

    def attribute(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        targets: Sequence[int],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = STEP_SCHEDULE,
    ) -> list[Attribution]:
        encoded = self.encode(texts)
        rows = [e.input_ids for e in encoded]
        done = self.integrate(rows, targets, f_inputs, tolerance, progress, schedule)
        return [
            Attribution(
                id=str(ids[i]),
                target=int(targets[i]),
                **_words(texts[i], encoded[i], done.scores[i]),
                f_input=float(done.f_input[i]),
                f_baseline=float(done.f_baseline[i]),
                steps=int(done.steps[i]),
                relative_delta=float(done.deltas[i]),
                inputs=rows[i],
            )
            for i in range(len(rows))
        ]

    def integrate(
        self,
        rows: list[list[int]],
        targets: Sequence[int],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int],
        where: Sequence[int] | None = None,
    ) -> Integrated:
        """IG of every row's target output against its baseline, on the adaptive step schedule.
        ``where``: per row, the position whose output is explained (token classifiers)."""
        baselines = [self.baseline_ids(r) for r in rows]
        f_in = f_inputs if f_inputs is not None else self.outputs(rows, targets, where=where)
        f_base = self.outputs(baselines, targets, where=where)
        token_scores: list[np.ndarray] = [np.zeros(len(r)) for r in rows]

        def attribute_at(pending: np.ndarray, steps: int) -> np.ndarray:
            for bucket in length_buckets(
                [len(rows[i]) for i in pending],
                self.max_rows,
                max(self.token_budget // steps, max(len(rows[i]) for i in pending)),
            ):
                members = [int(pending[i]) for i in bucket]
                scores = self._attribute_bucket(
                    [rows[i] for i in members],
                    [baselines[i] for i in members],
                    [targets[i] for i in members],
                    steps,
                    None if where is None else [where[i] for i in members],
                )
                for k, i in enumerate(members):
                    token_scores[i] = scores[k, : len(rows[i])]
            totals = np.array([token_scores[i].sum() for i in pending])
            return relative_delta(totals, f_in[pending], f_base[pending])

        with progress.task("Integrated gradients", total=len(rows)) as advance, input_gradients_only(self.model):
            steps_used, deltas = adaptive_steps(len(rows), schedule, tolerance, attribute_at, advance)
        return Integrated(token_scores, np.asarray(f_in, dtype=float), f_base, steps_used, deltas)

    def _attribute_bucket(
        self,
        rows: list[list[int]],
        baselines: list[list[int]],
        targets: list[int],
        steps: int,
        where: list[int] | None = None,
    ) -> np.ndarray:
        ids, mask = pad(rows, self.pad_id)
        base, _ = pad(baselines, self.pad_id)
        device = self.adapter.device
        width = ids.shape[1]
        internal = max(len(rows), (self.token_budget // max(width, 1)) // len(rows) * len(rows))
        extra = () if where is None else (torch.as_tensor(where, device=device),)  # Captum repeats it per step
        attributions = self.lig.attribute(
            ids.to(device),
            baselines=base.to(device),
            target=torch.as_tensor(targets, device=device),
            additional_forward_args=(mask.to(device), *extra),
            n_steps=steps,
            method=self.quadrature,
            internal_batch_size=internal,
        )
        return attributions.sum(dim=-1).detach().cpu().double().numpy()


def _words(text: str, encoded: EncodedText, token_scores: np.ndarray) -> dict:
    """Sum sub-token scores into the words of the original text (sign kept, special tokens dropped)."""
    spans: list[list[int]] = []
    scores: list[float] = []
    positions: list[list[int]] = []
    current = None
    for position, word in enumerate(encoded.word_ids):
        if word is None:
            continue
        start, end = encoded.offsets[position]
        if word != current:
            current = word
            spans.append([start, end])
            scores.append(0.0)
            positions.append([])
        spans[-1][1] = end
        scores[-1] += float(token_scores[position])
        positions[-1].append(position)
    return {
        "units": [text[s:e] for s, e in spans],
        "spans": [(s, e) for s, e in spans],
        "scores": np.array(scores),
        "unit_positions": positions,
    }
