"""The one training loop: builds the audited model and the privacy auditor's DP runs.

A run's examples are what DP protects: a table row, or a sentence of a token classifier. Each
example has one or more scored units (the row; each word's first piece), and a :class:`Trainable`
says its loss over an example's units and how a run is scored on a validation carve-out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.special import log_softmax
from sklearn import metrics as skm
from torch.utils.data import DataLoader, Dataset

from auditkit.progress import ProgressReporter

Batch = tuple[torch.Tensor, ...]  # (input, ..., label): flat, so Opacus' empty Poisson batches look the same
IGNORE = -100  # a label position that is no unit (a word's later pieces, padding): torch's ignore_index
UNKNOWN = -1  # a unit whose label the model lacks: its prediction is read, it adds nothing to the loss


@dataclass(frozen=True)
class TrainingData:
    """Examples ``(input, ..., label)`` as tensors, and the collate function that pads them into a batch."""

    dataset: Dataset
    collate: Callable[[Sequence[Any]], Batch]

    def loader(self, batch_size: int, seed: int, shuffle: bool = True) -> DataLoader:
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=self.collate, generator=generator
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def fit(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    device: torch.device,
    progress: ProgressReporter,
    description: str,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[float]:
    """Minimise cross-entropy of ``model(*inputs)`` against labels; returns the mean loss per epoch."""
    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    history: list[float] = []
    model.to(device)
    model.train()
    with progress.task(description, total=epochs * len(loader)) as advance:
        for _ in range(epochs):
            total, count = 0.0, 0
            for batch in loader:
                *inputs, labels = batch
                optimizer.zero_grad(set_to_none=True)
                logits = model(*(t.to(device) for t in inputs))
                if len(labels) == 0:  # Poisson sampling can draw an empty batch: still a (noised) step
                    loss = logits.sum() * 0.0
                else:
                    loss = loss_fn(logits, labels.to(device))
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += float(loss.detach()) * len(labels)
                count += len(labels)
                advance(1)
            history.append(total / max(count, 1))
    model.eval()
    return history


def linear_warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass(frozen=True)
class Outputs:
    """A model's logits on examples, one row per scored unit (a table row; a word's first piece).

    ``labels`` holds each unit's gold label (``UNKNOWN`` where the model has no such label) and
    ``example`` the example it belongs to, ascending: an example's statistics are over its units.
    """

    logits: np.ndarray  # (units, classes), float64
    labels: np.ndarray  # (units,)
    example: np.ndarray  # (units,)
    n_examples: int

    def log_likelihood(self) -> np.ndarray:
        """Per example, the mean log-probability of the gold labels of its known units: minus its loss
        (0 for an example without one, as the training loss counts it)."""
        known = self.labels >= 0
        log_p = np.zeros(len(self.labels))
        rows = np.flatnonzero(known)
        log_p[rows] = log_softmax(self.logits[rows], axis=1)[np.arange(len(rows)), self.labels[rows]]
        total = np.bincount(self.example, weights=log_p, minlength=self.n_examples)
        count = np.bincount(self.example, weights=known.astype(float), minlength=self.n_examples)
        return total / np.maximum(count, 1)

    def confidence(self) -> np.ndarray:
        """LiRA's per-example statistic: the log-odds of the (geometric) mean probability of the gold
        labels, ``log p - log(1 - p)``; for one unit, the logit-scaled confidence of Carlini et al."""
        log_p = np.minimum(self.log_likelihood(), -1e-12)
        return log_p - np.log(-np.expm1(log_p))

    def per_example(self) -> list[np.ndarray]:
        """Each example's unit logits, in order."""
        bounds = np.searchsorted(self.example, np.arange(self.n_examples + 1))
        return [self.logits[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def outputs_of(model: torch.nn.Module, data: TrainingData, device: torch.device, batch_size: int = 128) -> Outputs:
    """``model``'s logits on ``data``'s units: the rows of (batch, classes) logits, or the positions of
    (batch, positions, classes) logits whose label is not ``IGNORE``."""
    model.eval()
    logits, labels, example = [], [], []
    offset = 0
    with torch.inference_mode():
        for batch in data.loader(batch_size, seed=0, shuffle=False):
            *inputs, y = batch
            out = model(*(t.to(device) for t in inputs)).float().cpu()
            if out.ndim == 2:
                rows = torch.arange(len(y))
                logits.append(out.numpy())
                labels.append(y.numpy())
            else:
                rows, positions = torch.nonzero(y != IGNORE, as_tuple=True)
                logits.append(out[rows, positions].numpy())
                labels.append(y[rows, positions].numpy())
            example.append(rows.numpy() + offset)
            offset += len(y)
    model.train()
    return Outputs(
        np.concatenate(logits).astype(np.float64),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(example).astype(np.int64),
        offset,
    )


def classification_score(outputs: Outputs) -> float:
    """Validation score of one label per row, higher better: ROC AUC for two classes (threshold-free, so
    class imbalance cannot reward a constant), else the mean log-likelihood."""
    y, logits = outputs.labels, outputs.logits
    if logits.shape[1] == 2 and 0 < y.sum() < len(y):
        return float(skm.roc_auc_score(y, logits[:, 1] - logits[:, 0]))
    return float(outputs.log_likelihood().mean())


@dataclass
class Trainable:
    """What a retraining run (e.g. a DP run) trains: a fresh module per run and the examples it reads.

    ``loss`` is the mean over examples of each example's loss (DP clips per example; Opacus' ghost
    clipping sets its ``reduction`` to ``none`` for the per-example losses); ``score`` rates a run's
    outputs on a validation carve-out, higher better; ``encode`` turns other inputs (e.g. probe
    sentences) into examples the modules read, where the adapter offers it.
    """

    fresh: Callable[[], torch.nn.Module]  # a new, seeded-identical module; ``module(*inputs)`` returns logits
    train: TrainingData
    test: TrainingData
    description: str  # what is trained, for the report, e.g. "top 1 of 4 layers and a fresh classifier"
    loss: torch.nn.Module = field(default_factory=torch.nn.CrossEntropyLoss)
    score: Callable[[Outputs], float] = classification_score
    encode: Callable[[Any], TrainingData] | None = None
