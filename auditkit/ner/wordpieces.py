"""Words to word pieces and back for token classifiers: each word is read at its first sub-token,
as the founding BERT NER example does; the other pieces are ignored by the loss (label -100)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from auditkit.errors import AuditError
from auditkit.ner.tags import OUTSIDE, split_tag
from auditkit.tokens import pad
from auditkit.training import TrainingData

IGNORE = -100  # torch's CrossEntropyLoss ignore_index


@dataclass(frozen=True)
class WordPieces:
    input_ids: list[list[int]]
    first_piece: list[list[int]]  # per sentence, per word: position of its first piece, -1 when cut or empty
    word_ids: list[list[int | None]]  # per sentence, per piece: the word it belongs to (None: special token)
    n_truncated: int  # sentences whose last words did not fit in max_length


def encode_words(tokenizer: Any, sentences: Sequence[Sequence[str]], max_length: int) -> WordPieces:
    """Word pieces of pre-split sentences (fast tokenizer), cut to ``max_length`` with special tokens kept."""
    words = [list(s) for s in sentences]
    encoded = tokenizer(words, is_split_into_words=True, truncation=False, verbose=False)
    cut = sum(len(ids) > max_length for ids in encoded["input_ids"])
    if cut:
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    firsts, word_ids = [], []
    for row, sentence in enumerate(words):
        first = [-1] * len(sentence)
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and first[word] < 0:
                first[word] = position
        firsts.append(first)
        word_ids.append(list(encoded.word_ids(row)))
    return WordPieces(list(encoded["input_ids"]), firsts, word_ids, cut)


def piece_labels(pieces: WordPieces, tags: Sequence[Sequence[str]], label2id: dict[str, int]) -> list[list[int]]:
    """Label ids on each word's first piece, IGNORE elsewhere."""
    out = []
    for ids, first, sentence_tags in zip(pieces.input_ids, pieces.first_piece, tags, strict=True):
        labels = [IGNORE] * len(ids)
        for position, tag in zip(first, sentence_tags, strict=True):
            if position >= 0:
                labels[position] = label2id.get(tag, IGNORE)  # a type the model lacks teaches nothing
        out.append(labels)
    return out


class _Sentences(Dataset):
    def __init__(self, input_ids: list[list[int]], labels: list[list[int]]) -> None:
        self.input_ids, self.labels = input_ids, labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.input_ids[index], self.labels[index]


def training_data(
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]],
    label2id: dict[str, int],
    max_length: int,
) -> TrainingData:
    """``(input_ids, attention_mask, labels)`` batches; labels are (batch, pieces) with IGNORE padding."""
    pieces = encode_words(tokenizer, sentences, max_length)
    labels = piece_labels(pieces, tags, label2id)
    pad_id = tokenizer.pad_token_id or 0

    def collate(items: Sequence[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
        ids, mask = pad([i for i, _ in items], pad_id)
        target, _ = pad([y for _, y in items], IGNORE)
        return ids, mask, target

    return TrainingData(_Sentences(pieces.input_ids, labels), collate)


class LengthGroupedBatches(Sampler[list[int]]):
    """Batches of sentences of similar length, in a seeded random order that changes every epoch.

    Each epoch shuffles the sentences, sorts every run of ``group`` batches' worth by length and cuts it
    into batches, then shuffles the batches: about a third less padding on tweets than random batches,
    with the same number of batches and each sentence once per epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: int = 50) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.chunk = batch_size * group
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n, size = len(self.lengths), self.batch_size
        full, rest = divmod(n, self.chunk)
        return full * -(-self.chunk // size) + -(-rest // size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        batches = []
        for start in range(0, len(order), self.chunk):
            chunk = sorted(order[start : start + self.chunk], key=self.lengths.__getitem__)
            batches += [chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


def length_grouped_loader(data: TrainingData, batch_size: int, seed: int) -> DataLoader:
    """A loader of ``training_data`` whose batches hold sentences of similar length (see LengthGroupedBatches)."""
    lengths = [len(ids) for ids, _ in data.dataset]  # type: ignore[attr-defined]
    return DataLoader(
        data.dataset, batch_sampler=LengthGroupedBatches(lengths, batch_size, seed), collate_fn=data.collate
    )


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the first pieces of words (every other position is IGNORE)."""
    return torch.nn.functional.cross_entropy(logits.flatten(0, -2).float(), labels.flatten(), ignore_index=IGNORE)


class TokenLogits(torch.nn.Module):
    """``module(input_ids, attention_mask)`` -> (batch, pieces, tags) logits of a transformers token classifier."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def words_from_pieces(
    probabilities: np.ndarray, first: Sequence[int], id2label: dict[int, str]
) -> tuple[list[str], list[float | None]]:
    """Tag and its probability per word, read at the word's first piece; a word without a piece is O, unscored."""
    tags, scores = [], []
    for position in first:
        if position < 0:
            tags.append(OUTSIDE)
            scores.append(None)
            continue
        best = int(probabilities[position].argmax())
        tags.append(id2label[best])
        scores.append(float(probabilities[position, best]))
    return tags, scores


def predict_words(
    model: torch.nn.Module,
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    *,
    max_length: int,
    batch_size: int,
    device: torch.device,
    progress: Any,
    what: str = "the model",
) -> tuple[list[list[str]], list[list[float | None]], int]:
    """IOB2 tags and the probability of each predicted tag, per word; and how many sentences were cut.

    NaN or infinite logits would make argmax pick tag 0 for every word without a word of warning:
    they are refused, naming the sentence (``what`` names the model in the message)."""
    pieces = encode_words(tokenizer, sentences, max_length)
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    order = np.argsort([len(ids) for ids in pieces.input_ids], kind="stable")  # length buckets, little padding
    tags: list[list[str]] = [[] for _ in sentences]
    scores: list[list[float | None]] = [[] for _ in sentences]
    with progress.task("Tagging", total=len(order)) as advance, torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad([pieces.input_ids[i] for i in rows], tokenizer.pad_token_id or 0)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            probabilities = torch.softmax(logits.float(), dim=-1).cpu().double().numpy()
            for k, row in enumerate(rows):
                read = [position for position in pieces.first_piece[row] if position >= 0]
                if not np.isfinite(probabilities[k, read]).all():
                    raise AuditError(
                        f"{what}: the softmax of the model's logits holds missing (NaN) or infinite values for "
                        f"sentence {int(row) + 1} of {len(sentences)}; expected tag probabilities (broken weights?)"
                    )
                raw, row_scores = words_from_pieces(probabilities[k], pieces.first_piece[row], id2label)
                tags[row], scores[row] = as_iob2(raw), row_scores
            advance(len(rows))
    return tags, scores, pieces.n_truncated


def as_iob2(tags: Sequence[str]) -> list[str]:
    """Model output in IOB2 words: S-/E- (BIOES models) become B-/I-; stray I- stay and read as no entity."""
    out = []
    for tag in tags:
        try:
            prefix, kind = split_tag(tag)
        except ValueError:
            out.append(OUTSIDE)
            continue
        out.append(OUTSIDE if prefix == OUTSIDE else f"{'B' if prefix in 'BS' else 'I'}-{kind}")
    return out


def label_set(tags: Sequence[Sequence[str]]) -> list[str]:
    """O, then B-/I- of every type, types sorted: the label order of a built model."""
    types = sorted({split_tag(t)[1] for sentence in tags for t in sentence if t != OUTSIDE})  # type: ignore[type-var]
    return [OUTSIDE, *(f"{p}-{t}" for t in types for p in "BI")]
