"""One private (or non-private reference) training run with Opacus, through the shared loop."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.utils.batch_memory_manager import BatchMemoryManager

from auditkit.privacy.allocator import keep_freed_memory
from auditkit.progress import ProgressReporter
from auditkit.training import Trainable, TrainingData, fit, seed_everything


@dataclass(frozen=True)
class RunSettings:
    epochs: int
    learning_rate: float
    batch_size: int
    max_grad_norm: float
    delta: float
    accountant: str
    max_physical_batch_size: int
    grad_sample_mode: str
    seed: int


@dataclass
class RunOutcome:
    target_epsilon: float | None
    epsilon: float | None
    noise_multiplier: float
    sample_rate: float
    steps: int
    seconds: float
    train_logits: np.ndarray
    test_logits: np.ndarray
    losses: list[float]


def train_run(
    trainable: Trainable,
    settings: RunSettings,
    target_epsilon: float | None,
    device: torch.device,
    progress: ProgressReporter,
) -> RunOutcome:
    keep_freed_memory()  # per-sample gradients are re-allocated every step
    seed_everything(settings.seed)
    model = trainable.fresh().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
    loader = trainable.train.loader(settings.batch_size, settings.seed)
    label = "non-private" if target_epsilon is None else f"epsilon {target_epsilon:g}"
    started = time.perf_counter()
    if target_epsilon is None:
        losses = fit(
            model,
            loader,
            optimizer,
            epochs=settings.epochs,
            device=device,
            progress=progress,
            description=f"Training ({label})",
        )
        epsilon, noise, steps = None, 0.0, settings.epochs * len(loader)
        sample_rate = settings.batch_size / len(trainable.train.dataset)
    else:
        with warnings.catch_warnings():  # Opacus warns about secure RNG; reproducibility matters more here
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant=settings.accountant)
            private = engine.make_private_with_epsilon(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                target_epsilon=target_epsilon,
                target_delta=settings.delta,
                epochs=settings.epochs,
                max_grad_norm=settings.max_grad_norm,
                poisson_sampling=True,
                grad_sample_mode=settings.grad_sample_mode,
            )
        if settings.grad_sample_mode == "ghost":
            model, optimizer, criterion, loader = private
        else:
            (model, optimizer, loader), criterion = private, None
        losses = []
        for _ in range(settings.epochs):
            with (
                BatchMemoryManager(
                    data_loader=loader, max_physical_batch_size=settings.max_physical_batch_size, optimizer=optimizer
                ) as physical,
                warnings.catch_warnings(),
            ):
                # Opacus' hooks fire on layers whose inputs need no gradient (cached activations): expected.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                losses += fit(
                    model,
                    physical,
                    optimizer,
                    epochs=1,
                    device=device,
                    progress=progress,
                    description=f"Training ({label})",
                    loss_fn=criterion,
                )
        epsilon = float(engine.get_epsilon(settings.delta))
        noise = float(optimizer.noise_multiplier)
        sample_rate = float(loader.sample_rate)
        steps = int(sum(entry[2] for entry in engine.accountant.history))  # (noise, sample_rate, steps) entries
    seconds = time.perf_counter() - started
    module = getattr(model, "_module", model)
    return RunOutcome(
        target_epsilon,
        epsilon,
        noise,
        sample_rate,
        steps,
        seconds,
        logits_of(module, trainable.train, device),
        logits_of(module, trainable.test, device),
        losses,
    )


def logits_of(model: torch.nn.Module, data: TrainingData, device: torch.device, batch_size: int = 128) -> np.ndarray:
    model.eval()
    out = []
    loader = data.loader(batch_size, seed=0, shuffle=False)
    with torch.inference_mode():
        for batch in loader:
            *inputs, _ = batch
            out.append(model(*(t.to(device) for t in inputs)).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)
