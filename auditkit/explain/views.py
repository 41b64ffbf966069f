"""Dataset-level views of attributions: top words, and the share that falls on protected words."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property

import numpy as np
from pydantic import Field

from auditkit.config import StrictModel
from auditkit.explain.common import Attribution


class ProtectedTerms(StrictModel):
    """Words that name a sensitive attribute: exact words (any case) and text patterns.

    In a text both are matched on the original characters, not on the tokenizer's words: a word the
    tokenizer splits (``African-American`` -> ``African``, ``-``, ``American``) covers every unit whose
    span overlaps it. Tabular units read ``feature=value``: a word matches either part, a pattern the unit.
    """

    words: list[str] = Field(default_factory=list, description="e.g. [male, female, man, woman]")
    patterns: list[str] = Field(
        default_factory=list,
        description=r"Regular expressions; every word overlapping a match counts, e.g. '\d+ year old'",
    )

    @cached_property
    def _terms(self) -> dict[str, re.Pattern[str]]:
        """Each listed word or pattern, compiled; a word matches whole, never inside a longer word."""
        terms = {w: re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", re.IGNORECASE) for w in self.words}
        return terms | {p: re.compile(p, re.IGNORECASE) for p in self.patterns}

    def term_masks(self, attribution: Attribution, text: str | None) -> dict[str, np.ndarray]:
        """For each listed word or pattern, which units of this example it covers."""
        out = {}
        for term, regex in self._terms.items():
            flags = np.zeros(len(attribution.units), dtype=bool)
            if text is not None and attribution.spans is not None:
                for match in regex.finditer(text):
                    for k, (start, end) in enumerate(attribution.spans):
                        if start < match.end() and end > match.start():
                            flags[k] = True
            elif text is None:
                for k, unit in enumerate(attribution.units):
                    parts = {unit, *unit.split("=", 1)}
                    flags[k] = (
                        any(regex.fullmatch(part) for part in parts) if term in self.words else bool(regex.search(unit))
                    )
            out[term] = flags
        return out

    def mask(self, attribution: Attribution, text: str | None) -> np.ndarray:
        """Which units of this example name the attribute."""
        flags = np.zeros(len(attribution.units), dtype=bool)
        for term_flags in self.term_masks(attribution, text).values():
            flags |= term_flags
        return flags


def unmatched_terms(
    attributions: Sequence[Attribution], texts: Sequence[str | None], terms: ProtectedTerms
) -> list[str]:
    """Listed words and patterns that cover no attributed unit of any explained example: their share
    is 0 because they never occur (or were cut off), not because the model ignores them."""
    seen: set[str] = set()
    for a, text in zip(attributions, texts, strict=True):
        seen |= {term for term, flags in terms.term_masks(a, text).items() if flags.any()}
    return [term for term in [*terms.words, *terms.patterns] if term not in seen]


def protected_shares(
    attributions: Sequence[Attribution], texts: Sequence[str | None], terms: ProtectedTerms
) -> np.ndarray:
    """Per example: |attribution| on protected units / total |attribution| (0 when all are 0)."""
    out = np.zeros(len(attributions))
    for i, (a, text) in enumerate(zip(attributions, texts, strict=True)):
        magnitude = np.abs(a.scores)
        total = magnitude.sum()
        out[i] = magnitude[terms.mask(a, text)].sum() / total if total > 0 else 0.0
    return out


def top_units(
    attributions: Sequence[Attribution], toward_positive: Sequence[bool], k: int, min_count: int
) -> tuple[list[dict], list[dict]]:
    """Units with the largest mean attribution toward the favourable label, and against it."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for a, positive in zip(attributions, toward_positive, strict=True):
        sign = 1.0 if positive else -1.0
        for unit, score in zip(a.units, a.scores, strict=True):
            key = unit.lower()
            sums[key] += sign * float(score)
            counts[key] += 1
    rows = [
        {"token": u, "mean_attribution": sums[u] / counts[u], "count": counts[u]}
        for u in sums
        if counts[u] >= min_count
    ]
    rows.sort(key=lambda r: r["mean_attribution"], reverse=True)
    positive = [r for r in rows if r["mean_attribution"] > 0][:k]
    negative = [r for r in reversed(rows) if r["mean_attribution"] < 0][:k]
    return positive, negative
