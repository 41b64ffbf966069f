"""Entity-level metrics: strict IOB2 span matches per type, micro and macro, token accuracy,
bootstrap intervals over sentences, and a confusion table of entity types.

Every count is kept per sentence, so a bootstrap replicate is one matrix product of resampling
weights with those counts (sentences are the unit that is resampled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.ner.tags import Span, spans
from auditkit.stats.intervals import bootstrap_means, percentile_interval

BOUNDARY, MISSED, SPURIOUS = "(boundary)", "(missed)", "(spurious)"


@dataclass(frozen=True)
class EntityCounts:
    """Per-sentence counts: true positives, gold and predicted entities per type; words right and total."""

    types: list[str]
    tp: np.ndarray  # (n_sentences, n_types)
    gold: np.ndarray
    pred: np.ndarray
    correct_words: np.ndarray  # (n_sentences,)
    words: np.ndarray

    def stacked(self) -> np.ndarray:
        return np.hstack([self.tp, self.gold, self.pred, self.correct_words[:, None], self.words[:, None]])

    def subset(self, mask: np.ndarray) -> EntityCounts:
        return EntityCounts(
            self.types, self.tp[mask], self.gold[mask], self.pred[mask], self.correct_words[mask], self.words[mask]
        )


def count_entities(
    gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], types: Sequence[str] | None = None
) -> EntityCounts:
    gold_spans = [spans(t) for t in gold_tags]
    pred_spans = [spans(t) for t in pred_tags]
    found = sorted({s[2] for group in (gold_spans, pred_spans) for sentence in group for s in sentence})
    kinds = list(types) if types is not None else found
    index = {k: i for i, k in enumerate(kinds)}
    n = len(gold_tags)
    tp, gold, pred = (np.zeros((n, len(kinds)), dtype=np.int64) for _ in range(3))
    for row, (g, p) in enumerate(zip(gold_spans, pred_spans, strict=True)):
        for s in g:
            if s[2] in index:
                gold[row, index[s[2]]] += 1
        for s in p:
            if s[2] in index:
                pred[row, index[s[2]]] += 1
        for s in set(g) & set(p):
            if s[2] in index:
                tp[row, index[s[2]]] += 1
    pairs = zip(gold_tags, pred_tags, strict=True)
    correct = np.array([sum(a == b for a, b in zip(g, p, strict=True)) for g, p in pairs])
    words = np.array([len(g) for g in gold_tags])
    return EntityCounts(kinds, tp, gold, pred, correct.astype(np.int64), words.astype(np.int64))


def rates(tp: np.ndarray, gold: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 = 2 TP / (gold + predicted), NaN where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": np.where(pred > 0, tp / np.maximum(pred, 1e-300), np.nan),
            "recall": np.where(gold > 0, tp / np.maximum(gold, 1e-300), np.nan),
            "f1": np.where(gold + pred > 0, 2 * tp / np.maximum(gold + pred, 1e-300), np.nan),
        }


REASONS = {
    "precision": "no predicted entities",
    "recall": "no gold entities",
    "f1": "no gold or predicted entities",
    "macro_f1": "no gold or predicted entities",
    "token_accuracy": "no words",
}


def entity_report(counts: EntityCounts, n_boot: int, confidence: float, seed: int) -> dict[str, Any]:
    """Headline metrics (micro P/R/F1, macro F1, token accuracy) and per-type metrics, each with an interval."""
    k = len(counts.types)
    totals = counts.stacked().sum(axis=0).astype(float)
    replicates = bootstrap_means(counts.stacked().astype(float), n_boot, np.random.default_rng(seed))
    point = _metrics(totals[None, :], k)
    boot = _metrics(replicates, k)
    headline: dict[str, Any] = {"n_sentences": int(len(counts.words)), "n_words": int(counts.words.sum())}
    ci: dict[str, list[float] | None] = {}
    for name in ("precision", "recall", "f1", "macro_f1", "token_accuracy"):
        headline[name], ci[name] = _with_interval(point[name][0], boot[name], confidence)
        if headline[name] is None:
            headline[f"{name}_reason"] = REASONS[name]
    headline["n_gold_entities"] = int(counts.gold.sum())
    headline["n_pred_entities"] = int(counts.pred.sum())
    per_type: dict[str, dict[str, Any]] = {}
    for j, kind in enumerate(counts.types):
        row: dict[str, Any] = {
            "support": int(counts.gold[:, j].sum()),
            "n_pred": int(counts.pred[:, j].sum()),
            "tp": int(counts.tp[:, j].sum()),
        }
        row_ci: dict[str, list[float] | None] = {}
        for name in ("precision", "recall", "f1"):
            row[name], row_ci[name] = _with_interval(
                point[f"type_{name}"][0, j], boot[f"type_{name}"][:, j], confidence
            )
            if row[name] is None:
                row[f"{name}_reason"] = REASONS[name]
        row["ci"] = row_ci
        per_type[kind] = row
    return {"metrics": headline, "ci": ci, "by_type": per_type}


def _metrics(stacked: np.ndarray, k: int) -> dict[str, np.ndarray]:
    tp, gold, pred = stacked[:, :k], stacked[:, k : 2 * k], stacked[:, 2 * k : 3 * k]
    correct, words = stacked[:, 3 * k], stacked[:, 3 * k + 1]
    per_type = rates(tp, gold, pred)
    micro = rates(tp.sum(axis=1), gold.sum(axis=1), pred.sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(words > 0, correct / np.maximum(words, 1e-300), np.nan)
    out = {name: micro[name] for name in micro}
    out.update({f"type_{name}": values for name, values in per_type.items()})
    with np.errstate(invalid="ignore"):
        defined = ~np.isnan(per_type["f1"])
        out["macro_f1"] = np.where(
            defined.any(axis=1), np.nansum(per_type["f1"], axis=1) / np.maximum(defined.sum(axis=1), 1), np.nan
        )
    out["token_accuracy"] = accuracy
    return out


def _with_interval(value: float, replicates: np.ndarray, confidence: float) -> tuple[float | None, list[float] | None]:
    if not np.isfinite(value):
        return None, None
    interval, _ = percentile_interval(replicates, confidence)
    return float(value), list(interval) if interval else None


def type_confusion(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, dict[str, int]]:
    """Gold type -> what the model made of those entities: a type at the exact span, a boundary error, or a miss.

    Row ``(spurious)`` counts predicted entities that overlap no gold entity, by predicted type.
    """
    table: dict[str, dict[str, int]] = {}
    for gold_row, pred_row in zip(gold_tags, pred_tags, strict=True):
        gold, pred = spans(gold_row), spans(pred_row)
        exact = {(s, e): kind for s, e, kind in pred}
        for start, end, kind in gold:
            if (start, end) in exact:
                outcome = exact[(start, end)]
            elif any(_overlap((start, end, kind), p) for p in pred):
                outcome = BOUNDARY
            else:
                outcome = MISSED
            cell = table.setdefault(kind, {})
            cell[outcome] = cell.get(outcome, 0) + 1
        for p in pred:
            if not any(_overlap(p, g) for g in gold):
                cell = table.setdefault(SPURIOUS, {})
                cell[p[2]] = cell.get(p[2], 0) + 1
    return table


def _overlap(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def micro_f1_replicates(counts: EntityCounts, n_boot: int, seed: int) -> np.ndarray:
    """Micro entity F1 in each sentence-bootstrap replicate (NaN where no entity was drawn)."""
    weights = bootstrap_means(
        np.column_stack([counts.tp.sum(1), counts.gold.sum(1), counts.pred.sum(1)]).astype(float),
        n_boot,
        np.random.default_rng(seed),
    )
    return rates(weights[:, 0], weights[:, 1], weights[:, 2])["f1"]
