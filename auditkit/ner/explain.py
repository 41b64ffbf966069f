"""Integrated Gradients for one word's tag in a token classifier.

The explained output is the logit (or probability) of ``tag`` at the first word piece of word
``position``; attributions are taken on the input embeddings and summed into the sentence's words.
The same adaptive step schedule as for classifiers: every example starts cheap and only those whose
completeness error is above tolerance are redone with more steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

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
from auditkit.ner.wordpieces import encode_words
from auditkit.progress import ProgressReporter
from auditkit.tokens import pad

Example = tuple[list[int], int]  # word-piece ids, piece position of the explained word


class TokenIG:
    def __init__(
        self,
        model: torch.nn.Module,
        embeddings: torch.nn.Module,
        tokenizer: Any,
        device: torch.device,
        *,
        max_length: int,
        output: str = "logit",
        baseline_token: str = "pad",
        quadrature: str = "midpoint",
        token_budget: int | None = None,
        max_rows: int = 64,
    ) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.max_length, self.output, self.max_rows = max_length, output, max_rows
        self.token_budget = token_budget or default_token_budget(device)
        self.method = CAPTUM_METHODS[quadrature]
        token = {"pad": tokenizer.pad_token_id, "mask": tokenizer.mask_token_id, "unk": tokenizer.unk_token_id}
        if token[baseline_token] is None:
            raise ValueError(f"the tokenizer has no {baseline_token} token")
        self.baseline_id = int(token[baseline_token])
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.lig = LayerIntegratedGradients(self._forward, embeddings)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """(batch, tags) outputs at each row's explained piece; Captum repeats ``where`` along the path."""
        logits = self.model(input_ids, attention_mask)
        picked = logits[torch.arange(len(where), device=logits.device), where]
        return picked if self.output == "logit" else torch.softmax(picked, dim=-1)

    def baseline(self, ids: Sequence[int]) -> list[int]:
        """Same length; special tokens kept; every other piece replaced by the baseline token."""
        special = self.tokenizer.get_special_tokens_mask(list(ids), already_has_special_tokens=True)
        return [t if s else self.baseline_id for t, s in zip(ids, special, strict=True)]

    def outputs(self, examples: Sequence[Example], targets: Sequence[int], probability: bool = False) -> np.ndarray:
        """F at each example's explained piece for its target tag, in length buckets, without gradients."""
        out = np.empty(len(examples))
        with torch.inference_mode():
            for bucket in length_buckets([len(e[0]) for e in examples], self.max_rows * 4, self.token_budget * 4):
                ids, mask = pad([examples[i][0] for i in bucket], self.pad_id)
                where = torch.as_tensor([examples[i][1] for i in bucket], device=self.device)
                logits = self.model(ids.to(self.device), mask.to(self.device))
                picked = logits[torch.arange(len(bucket), device=self.device), where]
                values = torch.softmax(picked, -1) if probability or self.output != "logit" else picked
                chosen = values[torch.arange(len(bucket)), torch.as_tensor([targets[i] for i in bucket])]
                out[bucket] = chosen.cpu().double().numpy()
        return out

    def probabilities(self, examples: list[Example], targets: list[int]) -> np.ndarray:
        return self.outputs(examples, targets, probability=True)

    def perturb(self, attribution: Attribution, replace: np.ndarray) -> Example:
        """The example with the flagged words set to the baseline token; the explained word is never erased."""
        ids, where = attribution.inputs
        ids = list(ids)
        for k in np.flatnonzero(replace):
            for position in attribution.unit_positions[k]:
                if position != where:
                    ids[position] = self.baseline_id
        return ids, where

    def attribute(
        self,
        ids: Sequence[str],
        sentences: Sequence[Sequence[str]],
        positions: Sequence[int],
        targets: Sequence[int],
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = STEP_SCHEDULE,
    ) -> list[Attribution]:
        """One attribution per (sentence, word position, tag id); words cut by max_length cannot be explained."""
        pieces = encode_words(self.tokenizer, sentences, self.max_length)
        wheres = [first[p] for first, p in zip(pieces.first_piece, positions, strict=True)]
        if min(wheres, default=0) < 0:
            raise ValueError("an explained word lies beyond the model's maximum length")
        rows = pieces.input_ids
        examples = [(rows[i], wheres[i]) for i in range(len(rows))]
        baselines = [(self.baseline(r), w) for r, w in examples]
        f_in, f_base = self.outputs(examples, targets), self.outputs(baselines, targets)
        piece_scores: list[np.ndarray] = [np.zeros(len(r)) for r in rows]

        def attribute_at(pending: np.ndarray, steps: int) -> np.ndarray:
            widest = max(len(rows[i]) for i in pending)
            for bucket in length_buckets(
                [len(rows[i]) for i in pending], self.max_rows, max(self.token_budget // steps, widest)
            ):
                members = [int(pending[i]) for i in bucket]
                scores = self._bucket(members, rows, baselines, wheres, targets, steps)
                for k, i in enumerate(members):
                    piece_scores[i] = scores[k, : len(rows[i])]
            totals = np.array([piece_scores[i].sum() for i in pending])
            return relative_delta(totals, f_in[pending], f_base[pending])

        with progress.task("Integrated gradients", total=len(rows)) as advance, input_gradients_only(self.model):
            steps_used, deltas = adaptive_steps(len(rows), schedule, tolerance, attribute_at, advance)
        out = []
        for i, words in enumerate(sentences):
            units, scores, unit_positions = _words(words, pieces.word_ids[i], piece_scores[i])
            out.append(
                Attribution(
                    id=str(ids[i]),
                    target=int(targets[i]),
                    units=units,
                    spans=None,
                    scores=scores,
                    f_input=float(f_in[i]),
                    f_baseline=float(f_base[i]),
                    steps=int(steps_used[i]),
                    relative_delta=float(deltas[i]),
                    inputs=examples[i],
                    unit_positions=unit_positions,
                )
            )
        return out

    def _bucket(self, members, rows, baselines, wheres, targets, steps: int) -> np.ndarray:
        ids, mask = pad([rows[i] for i in members], self.pad_id)
        base, _ = pad([baselines[i][0] for i in members], self.pad_id)
        where = torch.as_tensor([wheres[i] for i in members], device=self.device)
        internal = max(len(members), (self.token_budget // max(ids.shape[1], 1)) // len(members) * len(members))
        attributions = self.lig.attribute(
            ids.to(self.device),
            baselines=base.to(self.device),
            target=torch.as_tensor([targets[i] for i in members], device=self.device),
            additional_forward_args=(mask.to(self.device), where),
            n_steps=steps,
            method=self.method,
            internal_batch_size=internal,
        )
        return attributions.sum(dim=-1).detach().cpu().double().numpy()


def _words(
    words: Sequence[str], word_ids: Sequence[int | None], piece_scores: np.ndarray
) -> tuple[list[str], np.ndarray, list[list[int]]]:
    """Sum piece scores into every word of the sentence (a word with no piece, cut or empty, scores 0)."""
    positions: list[list[int]] = [[] for _ in words]
    for position, word in enumerate(word_ids):
        if word is not None:
            positions[word].append(position)
    scores = np.array([float(piece_scores[p].sum()) if p else 0.0 for p in positions])
    return list(words), scores, positions
