"""Integrated Gradients for one word's tag (any :class:`~auditkit.adapters.capabilities.TokenAttributable`).

The same IG as :class:`~auditkit.explain.text_ig.TextIG` (its path, length buckets, token budget and
adaptive steps), with a forward that reads the tag scores at the explained word's first piece. A target
is ``(word position, tag id)``; a tag id of None means the tag the model gives that word, resolved here
by one forward pass, so a worker on Ray resolves it the same way. Piece attributions are summed into the
sentence's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from auditkit.adapters.capabilities import TokenAttributable
from auditkit.explain.common import STEP_SCHEDULE, Attribution
from auditkit.explain.engines import register_engine
from auditkit.explain.text_ig import TextIG
from auditkit.progress import ProgressReporter

WordTarget = tuple[int, int | None]  # (word position in the sentence, tag id; None: the model's own tag)
WordInput = tuple[list[int], int]  # word-piece ids, piece position of the explained word


@register_engine(TokenAttributable)
class TokenIG(TextIG):
    adapter: TokenAttributable

    def _select(self, logits: torch.Tensor, where: torch.Tensor | None) -> torch.Tensor:
        """(rows, tags) scores at each row's explained piece; Captum repeats ``where`` along the path."""
        if where is None:
            raise ValueError("the token engine needs the explained piece of every row")
        return logits[torch.arange(len(where), device=logits.device), where.to(logits.device)]

    def explain(
        self,
        split: Any,
        positions: np.ndarray,
        targets: Sequence[Any],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = STEP_SCHEDULE,
    ) -> tuple[list[Attribution], list[str | None]]:
        """``split``: sentences of words (:class:`~auditkit.ner.reader.Sentences`); ``targets``: WordTarget."""
        sentences = [list(split.tokens[i]) for i in positions]
        ids = [str(split.ids[i]) for i in positions]
        texts: list[str | None] = [" ".join(s) for s in sentences]
        return self.attribute_words(ids, sentences, targets, f_inputs, tolerance, progress, schedule), texts

    def attribute_words(
        self,
        ids: Sequence[str],
        sentences: Sequence[Sequence[str]],
        targets: Sequence[WordTarget],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int] = STEP_SCHEDULE,
    ) -> list[Attribution]:
        """One attribution per (sentence, target); a word cut by max_length has no piece to explain."""
        pieces = self.adapter.encode_sentences(sentences)
        words = [int(w) for w, _ in targets]
        where = [pieces.first_piece[k][w] for k, w in enumerate(words)]
        if min(where, default=0) < 0:
            raise ValueError("an explained word lies beyond the model's maximum length")
        rows = pieces.input_ids
        tags = self.resolve(rows, where, [t for _, t in targets])
        done = self.integrate(rows, tags, f_inputs, tolerance, progress, schedule, where)
        return [
            Attribution(
                id=str(ids[i]),
                target=(words[i], tags[i]),
                **sentence_words(sentences[i], pieces.word_ids[i], done.scores[i]),
                f_input=float(done.f_input[i]),
                f_baseline=float(done.f_baseline[i]),
                steps=int(done.steps[i]),
                relative_delta=float(done.deltas[i]),
                inputs=(rows[i], where[i]),
            )
            for i in range(len(rows))
        ]

    def resolve(self, rows: Sequence[Sequence[int]], where: Sequence[int], tags: Sequence[int | None]) -> list[int]:
        """Tag ids to explain: None becomes the model's highest-scoring tag at the word (BIOES models
        included, whose S-/E- tags the run's IOB2 predictions no longer name)."""
        top = np.zeros(len(rows), dtype=int)
        if any(t is None for t in tags):
            for bucket, logits in self.scored(rows, where):
                top[bucket] = logits.argmax(dim=-1).cpu().numpy()
        return [int(top[i]) if t is None else int(t) for i, t in enumerate(tags)]

    def perturb(self, attribution: Attribution, replace: np.ndarray) -> WordInput:
        """The example with the flagged words set to the baseline token; the explained word is never erased."""
        ids, where = attribution.inputs
        ids = list(ids)
        for k in np.flatnonzero(replace):
            if where in attribution.unit_positions[k]:
                continue
            for position in attribution.unit_positions[k]:
                ids[position] = self.baseline_id
        return ids, where

    def probabilities(self, inputs: list[Any], targets: list[Any]) -> np.ndarray:
        """Probability of each target's tag at its word, for inputs made by ``perturb``."""
        return self.outputs(
            [ids for ids, _ in inputs], [tag for _, tag in targets], probability=True, where=[w for _, w in inputs]
        )


def sentence_words(words: Sequence[str], word_ids: Sequence[int | None], piece_scores: np.ndarray) -> dict[str, Any]:
    """Piece scores summed into every word of the sentence (a word with no piece, cut or empty, scores 0);
    spans are the words' characters in the sentence joined by single spaces."""
    positions: list[list[int]] = [[] for _ in words]
    for position, word in enumerate(word_ids):
        if word is not None:
            positions[word].append(position)
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return {
        "units": list(words),
        "spans": spans,
        "scores": np.array([float(piece_scores[p].sum()) if p else 0.0 for p in positions]),
        "unit_positions": positions,
    }
