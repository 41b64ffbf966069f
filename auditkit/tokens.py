"""Token-id sequences: cut to a model's length and padded per batch (shared by adapters and engines)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Encoded:
    input_ids: list[list[int]]
    n_truncated: int


@dataclass(frozen=True)
class EncodedText:
    """One text as token ids, with the word each token belongs to and its character span."""

    input_ids: list[int]
    word_ids: list[int | None]
    offsets: list[tuple[int, int]]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> Encoded:
    """Token ids cut to ``max_length`` (special tokens kept), and how many texts were cut."""
    full = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    n_truncated = sum(len(ids) > max_length for ids in full)
    if n_truncated == 0:
        return Encoded(full, 0)
    cut = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return Encoded(cut, n_truncated)


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence in this batch only; returns (input_ids, attention_mask)."""
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask
