"""Tagging schemes: check IOB1 / IOB2 / BIOES tags, normalise them to IOB2, read strict IOB2 spans.

Every auditor sees IOB2 only, so one span reader (strict, as ``seqeval`` in strict mode) serves
gold tags and model output alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

Scheme = Literal["auto", "iob1", "iob2", "bioes"]
Span = tuple[int, int, str]  # (start, end exclusive, type)

OUTSIDE = "O"
TAG = re.compile(r"^(?P<prefix>[BIES])-(?P<type>\S+)$")
PREFIXES: dict[str, frozenset[str]] = {
    "iob1": frozenset("BI"),
    "iob2": frozenset("BI"),
    "bioes": frozenset("BIES"),
}


class TagError(ValueError):
    """A tag the scheme does not allow; ``index`` is the word's position in the sentence."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def split_tag(tag: str) -> tuple[str, str | None]:
    """``'B-person'`` -> ``('B', 'person')``; ``'O'`` -> ``('O', None)``."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    match = TAG.match(tag)
    if match is None:
        raise ValueError(tag)
    return match["prefix"], match["type"]


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """BIOES when any S-/E- tag appears; IOB1 when I- tags open entities and no B- tag does; IOB2 otherwise.

    IOB1 writes B- only between two adjacent entities of one type, so a B- tag after O or another type
    proves the file is not IOB1: a stray I- in such a file is then an error under IOB2, not a reason to
    read every entity of the file by IOB1's rule (which would change which gold entities exist).
    """
    inside_opens = b_opens = False
    for tags in sentences:
        previous: str | None = None
        for tag in tags:
            prefix, kind = _parts(tag)
            if prefix in "ES":
                return "bioes"
            if prefix == "I" and previous != kind:
                inside_opens = True
            if prefix == "B" and previous != kind:
                b_opens = True
            previous = kind
    return "iob1" if inside_opens and not b_opens else "iob2"


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """One sentence's tags in ``scheme`` as IOB2; TagError names the first tag the scheme forbids."""
    allowed = PREFIXES[scheme]
    out: list[str] = []
    previous_kind: str | None = None  # type of the entity the previous word belongs to
    for i, tag in enumerate(tags):
        try:
            prefix, kind = split_tag(tag)
        except ValueError:
            raise TagError(i, f"tag '{tag}' is not O or <prefix>-<type> ({_names(allowed)})") from None
        if prefix != OUTSIDE and prefix not in allowed:
            raise TagError(i, f"tag '{tag}' has prefix {prefix}-, which scheme {scheme} does not use")
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
        elif prefix in "BS":
            out.append(f"B-{kind}")
        elif previous_kind == kind:  # I- or E- continuing the entity
            out.append(f"I-{kind}")
        elif scheme == "iob2" or (scheme == "bioes" and prefix in "IE"):
            raise TagError(i, f"tag '{tag}' continues an entity that was not opened (scheme {scheme})")
        else:  # IOB1: an I- tag after O or another type opens an entity
            out.append(f"B-{kind}")
        if scheme == "bioes" and prefix in "BI" and _next_kind_inside(tags, i) != kind:
            raise TagError(i, f"tag '{tag}' is not closed by I-{kind} or E-{kind} (scheme bioes)")
        previous_kind = None if prefix == OUTSIDE or (scheme == "bioes" and prefix in "ES") else kind
    return out


def spans(tags: Sequence[str]) -> list[Span]:
    """Entities of IOB2 tags, read strictly: B-X opens, I-X continues, a stray I-X is no entity."""
    found: list[Span] = []
    start, kind = -1, None
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, this = _parts(tag)
        if kind is not None and not (prefix == "I" and this == kind):
            found.append((start, i, kind))
            kind = None
        if prefix == "B":
            start, kind = i, this
    return found


def tags_from_spans(length: int, entities: Sequence[Span]) -> list[str]:
    """IOB2 tags of ``length`` words holding ``entities`` (the inverse of :func:`spans`)."""
    tags = [OUTSIDE] * length
    for start, end, kind in entities:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def entity_types(sentences: Sequence[Sequence[str]]) -> list[str]:
    return sorted({split_tag(t)[1] for tags in sentences for t in tags if t != OUTSIDE})  # type: ignore[type-var]


def _parts(tag: str) -> tuple[str, str | None]:
    try:
        return split_tag(tag)
    except ValueError:
        return OUTSIDE, None  # only reached for model output, which is IOB2 by construction


def _next_kind_inside(tags: Sequence[str], i: int) -> str | None:
    if i + 1 >= len(tags):
        return None
    prefix, kind = _parts(tags[i + 1])
    return kind if prefix in "IE" else None


def _names(prefixes: frozenset[str]) -> str:
    return ", ".join(f"{p}-" for p in sorted(prefixes))
