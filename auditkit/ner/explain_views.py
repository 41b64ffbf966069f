"""Views of token attributions (torch-free): context words per entity type, and faithfulness per explained word.

A context word is any word of the sentence but the explained one. Scores are signed toward the tag
explained, so each type's lists gather the explanations whose tag has that type (``O`` for explanations
of the O tag: missed entities under target "predicted", and words outside entities).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from auditkit.explain.common import Attribution
from auditkit.explain.faithfulness import Perturb, Probabilities, faithfulness_curves
from auditkit.stats.intervals import bootstrap_means, percentile_interval

FAITHFULNESS_KEYS = (
    "comprehensiveness_aopc",
    "sufficiency_aopc",
    "random_comprehensiveness_aopc",
    "random_sufficiency_aopc",
)


def context_words(
    attributions: Sequence[Attribution],
    kinds: Sequence[str],
    *,
    top_k: int,
    min_count: int,
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per type: the ``top_k`` context words with the largest mean attribution toward the explained tag
    ("toward") and against it ("away"), each with its count and a bootstrap interval over its occurrences;
    words seen fewer than ``min_count`` times are left out."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for a, kind in zip(attributions, kinds, strict=True):
        explained = a.target[0]
        for k, (unit, score) in enumerate(zip(a.units, a.scores, strict=True)):
            if k != explained:
                values[kind][unit.lower()].append(float(score))
    out = {}
    for kind in sorted(values):
        means = {w: float(np.mean(v)) for w, v in values[kind].items() if len(v) >= min_count}
        order = sorted(means, key=lambda w: (-means[w], w))
        toward = [w for w in order if means[w] > 0][:top_k]
        away = [w for w in reversed(order) if means[w] < 0][:top_k]
        out[kind] = {
            side: [_word_row(w, np.array(values[kind][w]), n_boot, rng) for w in words]
            for side, words in (("toward", toward), ("away", away))
        }
    return out


def _word_row(word: str, scores: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    interval, _ = percentile_interval(bootstrap_means(scores[:, None], n_boot, rng)[:, 0], 0.95)
    return {
        "token": word,
        "mean_attribution": float(scores.mean()),
        "count": len(scores),
        "ci": list(interval) if interval else None,
    }


def context_only(a: Attribution) -> Attribution:
    """The attribution without its explained word: faithfulness ranks, removes and keeps context words only."""
    keep = [k for k in range(len(a.units)) if k != a.target[0]]
    return dataclasses.replace(
        a,
        units=[a.units[k] for k in keep],
        spans=[a.spans[k] for k in keep] if a.spans is not None else None,
        scores=a.scores[keep],
        unit_positions=[a.unit_positions[k] for k in keep] if a.unit_positions else [],
    )


def word_faithfulness(
    attributions: Sequence[Attribution],
    perturb: Perturb,
    probabilities: Probabilities,
    percents: Sequence[float],
    rng: np.random.Generator,
) -> list[dict[str, float] | None]:
    """ERASER AOPCs of each explained word over its context words, against a random ranking of the same
    words (None for a one-word sentence: it has no context to remove)."""
    views = [context_only(a) for a in attributions]
    scored = [i for i, v in enumerate(views) if v.units]
    out: list[dict[str, float] | None] = [None] * len(attributions)
    if not scored:
        return out
    curves = faithfulness_curves([views[i] for i in scored], perturb, probabilities, percents, rng)
    columns = [c.mean(axis=0) for kind in ("model", "random") for c in curves[kind]]
    for j, i in enumerate(scored):
        out[i] = {key: float(column[j]) for key, column in zip(FAITHFULNESS_KEYS, columns, strict=True)}
    return out


def faithfulness_summary(per_word: Sequence[dict[str, float] | None], kinds: Sequence[str]) -> dict[str, Any]:
    """Mean AOPCs over the explained words with context, overall and per type, and whether they beat random."""

    def mean_of(rows: list[dict[str, float]]) -> dict[str, Any]:
        means = {key: float(np.mean([r[key] for r in rows])) if rows else None for key in FAITHFULNESS_KEYS}
        better = bool(
            rows
            and means["comprehensiveness_aopc"] > means["random_comprehensiveness_aopc"]
            and means["sufficiency_aopc"] < means["random_sufficiency_aopc"]
        )
        return {**means, "better_than_random": better, "n": len(rows)}

    by_kind: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row, kind in zip(per_word, kinds, strict=True):
        if row is not None:
            by_kind[kind].append(row)
    return {
        **mean_of([row for row in per_word if row is not None]),
        "by_type": {kind: mean_of(rows) for kind, rows in sorted(by_kind.items())},
    }
