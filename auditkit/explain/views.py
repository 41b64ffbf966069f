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
    """Words that name a sensitive attribute: exact words (any case) and text patterns."""

    words: list[str] = Field(default_factory=list, description="e.g. [male, female, man, woman]")
    patterns: list[str] = Field(
        default_factory=list,
        description=r"Regular expressions; every word overlapping a match counts, e.g. '\d+ year old'",
    )

    @cached_property
    def _words(self) -> set[str]:
        return {w.lower() for w in self.words}

    def mask(self, attribution: Attribution, text: str | None) -> np.ndarray:
        """Which units of this example name the attribute."""
        # A tabular unit reads "feature=value": either part may name the attribute.
        flags = np.array(
            [any(part in self._words for part in {u.lower(), *u.lower().split("=", 1)}) for u in attribution.units],
            dtype=bool,
        )
        if self.patterns and text is not None and attribution.spans is not None:
            for pattern in self.patterns:
                for match in re.finditer(pattern, text, flags=re.IGNORECASE):
                    for k, (start, end) in enumerate(attribution.spans):
                        if start < match.end() and end > match.start():
                            flags[k] = True
        return flags


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
