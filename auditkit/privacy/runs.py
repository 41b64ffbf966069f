"""One private (or non-private reference) training run with Opacus, through the shared loop."""

from __future__ import annotations

import copy
import functools
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.utils.batch_memory_manager import BatchMemoryManager

from auditkit.privacy.allocator import keep_freed_memory
from auditkit.privacy.selection import subset
from auditkit.progress import ProgressReporter
from auditkit.training import Outputs, Trainable, TrainingData, fit, outputs_of, seed_everything


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
    train: Outputs
    test: Outputs
    losses: list[float]
    validation: Outputs | None = None
    epochs: int = 0  # the epochs the returned model trained (non-private: the best on validation)
    clipped_share: float | None = None  # share of per-sample gradients whose norm exceeded the clip norm
    epsilons: dict[str, float] = field(default_factory=dict)  # accountant -> epsilon of the same run
    extra: Outputs | None = None  # the run's outputs on further examples (e.g. name-probe sentences)


@functools.lru_cache(maxsize=256)
def accounted_epsilons(noise: float, sample_rate: float, steps: int, delta: float) -> dict[str, float]:
    """Epsilon of one (noise, sample rate, steps) run under Opacus' RDP and PRV accountants.

    Cached: a grid's runs and a run's LiRA shadows share their accounting, and one RDP evaluation
    at fractional orders costs ~0.2 s on a CPU core."""
    out = {}
    with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound is still valid
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        for name, accountant in (("rdp", RDPAccountant()), ("prv", PRVAccountant())):
            accountant.history = [(noise, sample_rate, steps)]
            out[name] = float(accountant.get_epsilon(delta))
    return out


@functools.lru_cache(maxsize=256)
def noise_for(target_epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str) -> float:
    """The noise multiplier ``make_private_with_epsilon`` would search for, searched once per setting
    (the search evaluates the accountant ten to twenty times; the shadows of a run repeat it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                epochs=epochs,
                accountant=accountant,
            )
        )


class ClipCounter:
    """Counts per-sample gradients above the clip norm, from the norms Opacus clips with.

    Wraps the DP optimizer's ``clip_and_accumulate``: the per-sample norms are computed as
    Opacus computes them (per-parameter norms, then their norm), once per physical batch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.clipped = self.total = 0
        self.optimizer, original = optimizer, optimizer.clip_and_accumulate

        def counting() -> None:
            samples = optimizer.grad_samples
            if len(samples) and len(samples[0]):
                norms = torch.stack([g.reshape(len(g), -1).norm(2, dim=-1) for g in samples], dim=1).norm(2, dim=1)
                self.clipped += int((norms > optimizer.max_grad_norm).sum())
                self.total += len(norms)
            original()

        optimizer.clip_and_accumulate = counting

    @property
    def share(self) -> float | None:
        return self.clipped / self.total if self.total else None


def train_run(
    trainable: Trainable,
    settings: RunSettings,
    target_epsilon: float | None,
    device: torch.device,
    progress: ProgressReporter,
    validation: TrainingData | None = None,
    checkpoints: tuple[int, ...] = (),
    extra: TrainingData | None = None,
) -> RunOutcome:
    """Train one run on ``trainable.train`` with ``trainable.loss``; its outputs on train, test,
    ``validation`` and ``extra``.

    Non-private: of the epoch counts in ``checkpoints`` (and the last), the one with the best
    validation score (``trainable.score``) is kept, one training pass for the whole epochs grid.
    Private: all ``settings.epochs`` run, as accounted.
    """
    keep_freed_memory()  # per-sample gradients are re-allocated every step
    seed_everything(settings.seed)
    model = trainable.fresh().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
    loader = trainable.train.loader(settings.batch_size, settings.seed)
    label = "non-private" if target_epsilon is None else f"epsilon {target_epsilon:g}"
    started = time.perf_counter()
    clipped_share = None
    epsilons: dict[str, float] = {}
    if target_epsilon is None:
        losses: list[float] = []
        best, best_state, best_epoch = -np.inf, None, settings.epochs
        for epoch in range(settings.epochs):
            losses += fit(
                model,
                loader,
                optimizer,
                epochs=1,
                device=device,
                progress=progress,
                description=f"Training ({label})",
                loss_fn=trainable.loss,
            )
            if validation is not None and (epoch + 1 in checkpoints or epoch + 1 == settings.epochs):
                score = trainable.score(outputs_of(model, validation, device))
                if score > best:
                    best, best_state, best_epoch = score, copy.deepcopy(model.state_dict()), epoch + 1
        if best_state is not None:
            model.load_state_dict(best_state)
        epsilon, noise, steps = None, 0.0, best_epoch * len(loader)
        sample_rate = settings.batch_size / len(trainable.train.dataset)
        epochs = best_epoch
    else:
        with warnings.catch_warnings():  # Opacus warns about secure RNG; reproducibility matters more here
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant=settings.accountant)
            # As make_private_with_epsilon does it (sample rate 1 / batches), with the search cached.
            noise = noise_for(target_epsilon, settings.delta, 1 / len(loader), settings.epochs, settings.accountant)
            private = engine.make_private(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=noise,
                max_grad_norm=settings.max_grad_norm,
                poisson_sampling=True,
                grad_sample_mode=settings.grad_sample_mode,
                criterion=trainable.loss,  # ghost clipping reads per-example losses from it
            )
        if settings.grad_sample_mode == "ghost":
            model, optimizer, criterion, loader = private
            counter = None  # ghost clipping never materialises per-sample gradients
        else:
            (model, optimizer, loader), criterion = private, trainable.loss
            counter = ClipCounter(optimizer)
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
        noise = float(optimizer.noise_multiplier)
        sample_rate = float(loader.sample_rate)
        steps = int(sum(entry[2] for entry in engine.accountant.history))  # (noise, sample_rate, steps) entries
        clipped_share = counter.share if counter is not None else None
        epsilons = accounted_epsilons(noise, sample_rate, steps, settings.delta)
        if len(engine.accountant.history) == 1 and settings.accountant in epsilons:
            epsilon = epsilons[settings.accountant]  # the engine's own accountant on the same one entry
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
                epsilon = float(engine.get_epsilon(settings.delta))
        epochs = settings.epochs
    seconds = time.perf_counter() - started
    module = getattr(model, "_module", model)
    return RunOutcome(
        target_epsilon,
        epsilon,
        noise,
        sample_rate,
        steps,
        seconds,
        outputs_of(module, trainable.train, device),
        outputs_of(module, trainable.test, device),
        losses,
        outputs_of(module, validation, device) if validation is not None else None,
        epochs,
        clipped_share,
        epsilons,
        outputs_of(module, extra, device) if extra is not None else None,
    )


@dataclass(frozen=True)
class RunJob:
    """What one task of a sweep trains: its settings (and seed), target epsilon (None: the
    non-private reference), the epochs the reference keeps the best of, and for a LiRA shadow the
    rows of ``RunTask.population`` it trains on (it is then scored on the whole population)."""

    settings: RunSettings
    target_epsilon: float | None
    checkpoints: tuple[int, ...] = ()
    shadow_rows: np.ndarray | None = None


@dataclass
class RunTask:
    """``train_run`` as a picklable task, so an executor can run every run (and every shadow) of a
    sweep at once, each on its own worker: the data travels once with the task, the jobs are small.
    The device is resolved where the task runs (a worker given a GPU trains on it); progress stays
    in this process."""

    trainable: Trainable
    device: str = "auto"  # model.device: auto, cpu or cuda
    validation: TrainingData | None = None  # runs choose their epochs and learning rate on it
    population: TrainingData | None = None  # shadows train on rows of it
    progress: ProgressReporter | None = None
    extra: TrainingData | None = None  # runs (not shadows) are also scored on these examples

    def __getstate__(self) -> dict:
        return {**self.__dict__, "progress": None}

    def __call__(self, job: RunJob) -> RunOutcome:
        from auditkit.adapters.base import resolve_device
        from auditkit.progress import SILENT

        device, progress = resolve_device(self.device), self.progress or SILENT
        if job.shadow_rows is None:
            return train_run(
                self.trainable,
                job.settings,
                job.target_epsilon,
                device,
                progress,
                self.validation,
                job.checkpoints,
                self.extra,
            )
        if self.population is None:
            raise ValueError("a shadow job needs the task's population")
        rows = subset(self.population, job.shadow_rows)
        shadow = replace(self.trainable, train=rows, test=self.population, description="shadow")
        return train_run(shadow, job.settings, job.target_epsilon, device, progress)
