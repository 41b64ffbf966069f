"""Differentially private token classifiers and sentence-level membership inference.

Each run trains a token-classification head with Opacus on the word features of the public base
encoder (the model the audited one was fine-tuned from), computed once and cached: the encoder
never sees the training sentences' gradients, so the run's (epsilon, delta) covers everything it
learned from them. A sentence is one example: per-sample gradients are per sentence, and its loss
is the mean cross-entropy over its words. The attack scores a sentence by minus that loss.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from torch.utils.data import Dataset

from auditkit.ner.wordpieces import IGNORE, as_iob2, encode_words
from auditkit.privacy.runs import accounted_epsilons, noise_for
from auditkit.progress import ProgressReporter
from auditkit.tokens import pad
from auditkit.training import TrainingData, fit, seed_everything


def word_features(
    encoder: torch.nn.Module,
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    *,
    max_length: int,
    device: torch.device,
    batch_size: int = 64,
) -> list[np.ndarray]:
    """Per sentence, (words, hidden) last-layer states at each word's first piece (zeros for a cut word)."""
    pieces = encode_words(tokenizer, sentences, max_length)
    out: list[np.ndarray] = [np.empty(0)] * len(sentences)
    order = np.argsort([len(ids) for ids in pieces.input_ids], kind="stable")
    encoder.to(device).eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = pad([pieces.input_ids[i] for i in rows], tokenizer.pad_token_id or 0)
            states = encoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            states = states.float().cpu().numpy()
            for k, row in enumerate(rows):
                first = np.asarray(pieces.first_piece[row])
                feats = np.zeros((len(first), states.shape[-1]), dtype=np.float32)
                feats[first >= 0] = states[k, first[first >= 0]]
                out[row] = feats
    return out


class _Words(Dataset):
    def __init__(self, features: list[np.ndarray], labels: list[list[int]]) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[int]]:
        return self.features[index], self.labels[index]


def word_data(features: list[np.ndarray], labels: list[list[int]]) -> TrainingData:
    def collate(items: Sequence[tuple[np.ndarray, list[int]]]) -> tuple[torch.Tensor, ...]:
        width = max((len(f) for f, _ in items), default=0)
        hidden = items[0][0].shape[1] if items else 1
        x = torch.zeros((len(items), width, hidden))
        y = torch.full((len(items), width), IGNORE, dtype=torch.long)
        for row, (f, label) in enumerate(items):
            x[row, : len(f)] = torch.from_numpy(f)
            y[row, : len(label)] = torch.as_tensor(label, dtype=torch.long)
        return x, y

    return TrainingData(_Words(features, labels), collate)


def sentence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over sentences of each sentence's mean word cross-entropy: one example = one sentence."""
    return per_sentence_loss(logits, labels).mean()


def per_sentence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    words = torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
    )
    valid = (labels != IGNORE).sum(dim=1).clamp(min=1)
    return words.sum(dim=1) / valid


@dataclass
class HeadRun:
    target_epsilon: float | None
    epsilon: float | None
    noise_multiplier: float
    sample_rate: float
    steps: int
    seconds: float
    head: torch.nn.Linear
    history: list[tuple[float, float, int]]  # the accountant's (noise, sample rate, steps) entries


def train_head(
    data: TrainingData,
    hidden: int,
    n_labels: int,
    *,
    target_epsilon: float | None,
    delta: float,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    max_grad_norm: float,
    accountant: str,
    seed: int,
    device: torch.device,
    progress: ProgressReporter,
) -> HeadRun:
    """One head, private at ``target_epsilon`` (Poisson sampling, per-sentence clipping) or not (None)."""
    seed_everything(seed)
    head = torch.nn.Linear(hidden, n_labels).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate)
    loader = data.loader(batch_size, seed)
    label = "non-private" if target_epsilon is None else f"epsilon {target_epsilon:g}"
    started = time.perf_counter()
    if target_epsilon is None:
        fit(
            head,
            loader,
            optimizer,
            epochs=epochs,
            device=device,
            progress=progress,
            description=f"Token head ({label})",
            loss_fn=sentence_loss,
        )
        return HeadRun(
            None,
            None,
            0.0,
            batch_size / len(data.dataset),
            epochs * len(loader),
            time.perf_counter() - started,
            head,
            [],
        )
    with warnings.catch_warnings():  # Opacus warns about secure RNG; reproducibility matters more here
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant=accountant)
        # As make_private_with_epsilon does it (sample rate 1 / batches), with the search cached.
        model, optimizer, private_loader = engine.make_private(
            module=head,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise_for(target_epsilon, delta, 1 / len(loader), epochs, accountant),
            max_grad_norm=max_grad_norm,
            poisson_sampling=True,
        )
    with warnings.catch_warnings():  # Opacus' hooks fire on a head whose inputs need no gradient: expected
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        fit(
            model,
            private_loader,
            optimizer,
            epochs=epochs,
            device=device,
            progress=progress,
            description=f"Token head ({label})",
            loss_fn=sentence_loss,
        )
    history = [tuple(entry) for entry in engine.accountant.history]
    if len(history) == 1:  # one (noise, sample rate, steps) entry: the cached accounting of that entry
        epsilon = accounted_epsilons(*history[0], delta)[accountant]
    else:
        epsilon = float(engine.get_epsilon(delta))
    return HeadRun(
        target_epsilon,
        epsilon,
        float(optimizer.noise_multiplier),
        float(private_loader.sample_rate),
        int(sum(entry[2] for entry in history)),
        time.perf_counter() - started,
        getattr(model, "_module", model),
        history,  # type: ignore[arg-type]
    )


@dataclass
class HeadTask:
    """``train_head`` at one target epsilon (None: the reference) as a task an executor can ship:
    every run of a token audit trains at once on a cluster. The device is resolved where the task
    runs; progress stays in this process."""

    data: TrainingData
    hidden: int
    n_labels: int
    settings: dict[str, Any]  # train_head's keyword settings but target_epsilon, device and progress
    device: str = "cpu"  # "auto" when the audited model is on a GPU
    progress: ProgressReporter | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}

    def __call__(self, target_epsilon: float | None) -> HeadRun:
        from auditkit.adapters.base import resolve_device
        from auditkit.progress import SILENT

        return train_head(
            self.data,
            self.hidden,
            self.n_labels,
            target_epsilon=target_epsilon,
            device=resolve_device(self.device),
            progress=self.progress or SILENT,
            **self.settings,
        )


def head_outputs(
    head: torch.nn.Module,
    features: list[np.ndarray],
    labels: list[list[int]] | None,
    id2label: dict[int, str],
    device: torch.device,
) -> tuple[list[list[str]], np.ndarray | None]:
    """IOB2 tags per word and, with gold labels, each sentence's loss."""
    head.eval()
    tags, losses = [], []
    with torch.inference_mode():
        for k, f in enumerate(features):
            logits = head(torch.from_numpy(f).to(device))
            tags.append(as_iob2([id2label[int(i)] for i in logits.argmax(-1).cpu()]))
            if labels is not None:
                y = torch.as_tensor(labels[k], dtype=torch.long, device=device)
                losses.append(float(per_sentence_loss(logits[None], y[None])[0]))
    return tags, (np.array(losses) if labels is not None else None)


def word_labels(
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]],
    label2id: dict[str, int],
    max_length: int,
) -> list[list[int]]:
    """Label id per word; IGNORE for a word cut by max_length or a tag the head does not have."""
    pieces = encode_words(tokenizer, sentences, max_length)
    return [
        [label2id.get(t, IGNORE) if p >= 0 else IGNORE for t, p in zip(sentence_tags, first, strict=True)]
        for sentence_tags, first in zip(tags, pieces.first_piece, strict=True)
    ]
