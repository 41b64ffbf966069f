"""Sentences as the examples of DP runs of token classifiers, and what a run's outputs say about them.

A sentence is one example: per-sample gradients are per sentence, and its loss is the mean
cross-entropy over its words, each read at its first word piece (the other pieces are no unit).
A word whose tag the fresh head lacks is a unit without a label (``UNKNOWN``): its tag is
predicted, it adds nothing to the loss. Runs are chosen on the validation carve-out by micro
entity F1, the figure the audit reports: token accuracy would reward a run that tags every word O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from auditkit.ner.metrics import count_entities
from auditkit.ner.tags import OUTSIDE
from auditkit.ner.wordpieces import as_iob2, encode_words
from auditkit.training import IGNORE, UNKNOWN, Outputs


class SentenceLoss(torch.nn.Module):
    """Each sentence's mean word cross-entropy, averaged over the batch (``reduction`` ``none``: per sentence,
    as Opacus' ghost clipping asks for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        per_sentence = per_sentence_loss(logits, labels)
        return per_sentence if self.reduction == "none" else per_sentence.mean()


def per_sentence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(batch, positions, tags) logits against (batch, positions) labels: the mean cross-entropy over each
    sentence's labelled positions (negative labels are none), 0 for a sentence without one."""
    known = labels >= 0
    target = labels.masked_fill(~known, IGNORE)
    words = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), target, ignore_index=IGNORE, reduction="none"
    )
    return words.sum(dim=1) / known.sum(dim=1).clamp(min=1)


def readable(tokenizer: Any, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """The sentences with every word the tokenizer drops entirely read as its unknown token, so that each
    word but those cut by max_length has a first piece (a unit, in word order)."""
    out = []
    for sentence in sentences:
        words = list(sentence)
        if words:
            pieces = tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids()
            present = {w for w in pieces if w is not None}
            words = [w if i in present else tokenizer.unk_token for i, w in enumerate(words)]
        out.append(words)
    return out


def sentence_rows(
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]] | None,
    labels: Sequence[str],
    max_length: int,
) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Word-piece ids per sentence, and per piece its label: the tag id at each word's first piece
    (``UNKNOWN`` for a tag the head lacks, and for every word without ``tags``), IGNORE elsewhere."""
    pieces = encode_words(tokenizer, readable(tokenizer, sentences), max_length)
    index = {t: i for i, t in enumerate(labels)}
    rows = []
    for k, (ids, first) in enumerate(zip(pieces.input_ids, pieces.first_piece, strict=True)):
        y = torch.full((len(ids),), IGNORE, dtype=torch.long)
        for word, position in enumerate(first):
            if position >= 0:
                y[position] = index.get(tags[k][word], UNKNOWN) if tags is not None else UNKNOWN
        rows.append(y)
    return pieces.input_ids, rows


def run_tags(outputs: Outputs, labels: Sequence[str], lengths: Sequence[int]) -> list[list[str]]:
    """IOB2 tags per word from a run's outputs: each unit's most probable tag; words cut by max_length are O."""
    out = []
    for logits, n in zip(outputs.per_example(), lengths, strict=True):
        tags = [labels[int(i)] for i in logits.argmax(axis=1)] if len(logits) else []
        out.append(as_iob2(tags + [OUTSIDE] * (n - len(tags))))
    return out


@dataclass(frozen=True)
class EntityF1:
    """A run's validation score: micro entity F1 on the carve-out (0 where no entity is gold or predicted)."""

    labels: tuple[str, ...]

    def __call__(self, outputs: Outputs) -> float:
        gold, pred = [], []
        for logits, y in zip(outputs.per_example(), _labels_per_example(outputs), strict=True):
            gold.append([self.labels[int(i)] if i >= 0 else OUTSIDE for i in y])
            pred.append(as_iob2([self.labels[int(i)] for i in logits.argmax(axis=1)]) if len(logits) else [])
        counts = count_entities(gold, pred)
        denominator = int(counts.gold.sum() + counts.pred.sum())
        return 2.0 * float(counts.tp.sum()) / denominator if denominator else 0.0


def _labels_per_example(outputs: Outputs) -> list[np.ndarray]:
    bounds = np.searchsorted(outputs.example, np.arange(outputs.n_examples + 1))
    return [outputs.labels[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
