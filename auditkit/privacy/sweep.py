"""The runs of one privacy audit, whatever the task: every (learning rate, epochs) of every run's grid
trained as executor tasks, the best on the validation carve-out kept, the loss attack, and every LiRA
shadow of every attacked run trained as more tasks. How a run is trained and scored is its
:class:`~auditkit.training.Trainable`'s business (one label per row, or a tag per word of a sentence)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from auditkit.privacy.lira import lira_from_confidences, shadow_masks
from auditkit.privacy.mia import AttackResult, loss_attack
from auditkit.privacy.plan import RunSpec
from auditkit.privacy.runs import RunJob, RunOutcome, RunSettings, RunTask
from auditkit.privacy.selection import subset
from auditkit.training import Trainable, TrainingData


@dataclass
class Trained:
    """A run's best grid point: its outcome, learning rate and validation score."""

    outcome: RunOutcome
    learning_rate: float
    validation_score: float


@dataclass
class Shadowed:
    """A run LiRA attacks: how its shadows train (its settings; rows per shadow)."""

    spec: RunSpec
    outcome: RunOutcome
    settings: RunSettings
    masks: np.ndarray


class Sweep:
    """Trains, tunes and attacks the runs of one audit on ``trainable`` (fit rows), ``validation`` (the
    carve-out) and ``population`` (fit rows then test rows, which LiRA's shadows train on subsets of).

    ``members`` and ``nonmembers`` are the balanced fit and test rows every attack scores; ``extra``
    are further examples every run (not shadow) is scored on.
    """

    def __init__(
        self,
        settings: Any,  # PrivacySettings
        context: Any,  # AuditContext
        trainable: Trainable,
        validation: TrainingData,
        population: TrainingData,
        members: np.ndarray,
        nonmembers: np.ndarray,
        extra: TrainingData | None = None,
    ) -> None:
        self.s, self.context, self.trainable = settings, context, trainable
        self.validation, self.population, self.extra = validation, population, extra
        self.members, self.nonmembers = members, nonmembers
        self.checkpoints = tuple(settings.grid()[1])  # the reference tries every epochs value in one pass
        self.n_fit = len(trainable.train.dataset)
        # LiRA attacks the sampled members and non-members; shadows train on subsets of these rows.
        self.attacked_rows = np.concatenate([members, self.n_fit + nonmembers])
        self.attacked_member = np.arange(len(self.attacked_rows)) < len(members)
        self.attacked = subset(population, self.attacked_rows)

    def settings(self, spec: RunSpec, lr: float, epochs: int, delta: float) -> RunSettings:
        s = self.s
        return RunSettings(
            epochs,
            lr,
            s.batch_size,
            spec.max_grad_norm,
            delta,
            s.accountant,
            s.max_physical_batch_size,
            s.grad_sample_mode,
            self.context.seed,
        )

    def task(
        self,
        validation: TrainingData | None = None,
        population: TrainingData | None = None,
        extra: TrainingData | None = None,
    ) -> RunTask:
        """Runs train where the executor puts them; a worker given a GPU resolves it there."""
        device = "auto" if self.context.adapter.device.type == "cuda" else "cpu"
        return RunTask(self.trainable, device, validation, population, self.context.progress, extra)

    def map(self, task: RunTask, jobs: list[RunJob]) -> list[RunOutcome]:
        """All jobs as one executor call: a cluster runs as many at once as it has room for."""
        return self.context.executor.map(task, jobs, gpu=self.context.adapter.device.type == "cuda")

    def train(self, specs: list[RunSpec], delta: float) -> list[Trained]:
        """Every (learning rate, epochs) of every spec's grid; per spec the best on the validation carve-out
        (the first of equals, in grid order)."""
        jobs, owners = [], []
        for k, spec in enumerate(specs):
            checkpoints = self.checkpoints if spec.epsilon is None else ()
            for lr in spec.learning_rates:
                for epochs in spec.epochs:
                    jobs.append(RunJob(self.settings(spec, lr, epochs, delta), spec.epsilon, checkpoints))
                    owners.append((k, lr))
        outcomes = self.map(self.task(validation=self.validation, extra=self.extra), jobs)
        best: list[Trained | None] = [None] * len(specs)
        for (k, lr), outcome in zip(owners, outcomes, strict=True):
            if outcome.validation is None:  # the task scores every run of the grid on the carve-out
                raise ValueError("a grid run came back without validation outputs")
            score = self.trainable.score(outcome.validation)
            current = best[k]
            if current is None or score > current.validation_score:
                best[k] = Trained(outcome, lr, score)
        return [b for b in best if b is not None]

    def loss_attack(self, outcome: RunOutcome, delta: float) -> AttackResult:
        """Loss threshold on the sampled members and non-members: an example's loss over its units."""
        train_loss = -outcome.train.log_likelihood()
        test_loss = -outcome.test.log_likelihood()
        return loss_attack(train_loss[self.members], test_loss[self.nonmembers], delta)

    def shadow_masks(self, rng: np.random.Generator) -> np.ndarray | None:
        """The rows each LiRA shadow of one run trains on (None: LiRA off), drawn from ``rng``."""
        if not self.s.lira_shadows:
            return None
        return shadow_masks(len(self.attacked_rows), self.n_fit, self.s.lira_shadows, rng)

    def attack(self, attacks: list[Shadowed], delta: float) -> list[AttackResult]:
        """LiRA on every run in ``attacks``: all their shadows trained as one executor call."""
        jobs = [
            RunJob(replace(a.settings, seed=a.settings.seed + 1 + i), a.spec.epsilon, shadow_rows=np.flatnonzero(m))
            for a in attacks
            for i, m in enumerate(a.masks)  # each shadow its own noise and batches
        ]
        if not jobs:
            return []
        phis = iter([o.test.confidence() for o in self.map(self.task(population=self.attacked), jobs)])
        out = []
        for a in attacks:
            target = np.concatenate([a.outcome.train.confidence(), a.outcome.test.confidence()])[self.attacked_rows]
            shadows = np.stack([next(phis) for _ in a.masks])
            out.append(lira_from_confidences(target, self.attacked_member, shadows, a.masks, delta))
        return out


def bound_flags(outcome: RunOutcome, attack: AttackResult | None) -> list[str]:
    """A flag where an attack proves more leakage than the run's accounted epsilon allows."""
    if attack and outcome.epsilon is not None and attack.epsilon_lower_bound > outcome.epsilon:
        return [
            f"the {attack.method} attack's epsilon lower bound {attack.epsilon_lower_bound:.3g} exceeds "
            f"the accounted epsilon {outcome.epsilon:.3g}: a bug in accounting or in the audit"
        ]
    return []
