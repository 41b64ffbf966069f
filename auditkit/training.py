"""The one training loop: builds the audited model and (later) the privacy auditor's DP runs."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from auditkit.progress import ProgressReporter

Batch = tuple[torch.Tensor, ...]  # (input, ..., label): flat, so Opacus' empty Poisson batches look the same


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


@dataclass
class Trainable:
    """What a retraining run (e.g. a DP run) trains: a fresh module per run and the examples it reads."""

    fresh: Callable[[], torch.nn.Module]  # a new, seeded-identical module; ``module(*inputs)`` returns logits
    train: TrainingData
    test: TrainingData
    description: str  # what is trained, for the report, e.g. "top 1 of 4 layers and a fresh classifier"
