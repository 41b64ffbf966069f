"""Counterfactual text edits: swap words that name a group (he <-> she), or rewrite a pattern."""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import Field, field_validator

from auditkit.config import StrictModel


class TextSwap(StrictModel):
    """One counterfactual edit. ``pairs`` swap whole words both ways, keeping case;
    ``replace`` rewrites each regular-expression match (one way)."""

    pairs: list[tuple[str, str]] = Field(default_factory=list, description="e.g. [[male, female], [he, she]]")
    replace: list[tuple[str, str]] = Field(
        default_factory=list, description=r"e.g. [['\b\d+ year old\b', '70 year old']]"
    )

    @field_validator("replace")
    @classmethod
    def _compiles(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for pattern, _ in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return value

    @field_validator("pairs")
    @classmethod
    def _distinct(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        words = [w.lower() for pair in value for w in pair]
        if len(words) != len(set(words)):
            raise ValueError("each word may appear in only one pair, once")
        return value

    @cached_property
    def _partner(self) -> dict[str, str]:
        partner = {}
        for a, b in self.pairs:
            partner[a.lower()], partner[b.lower()] = b.lower(), a.lower()
        return partner

    @cached_property
    def _pair_pattern(self) -> re.Pattern[str] | None:
        if not self.pairs:
            return None
        words = sorted(self._partner, key=len, reverse=True)
        return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)

    def apply(self, text: str) -> str:
        if self._pair_pattern is not None:
            text = self._pair_pattern.sub(lambda m: _same_case(m.group(0), self._partner[m.group(0).lower()]), text)
        for pattern, replacement in self.replace:
            text = re.sub(pattern, replacement, text)
        return text


def _same_case(original: str, word: str) -> str:
    if original.isupper() and len(original) > 1:
        return word.upper()
    if original[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
