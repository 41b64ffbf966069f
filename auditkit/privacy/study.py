"""The runs of one privacy audit: trained and tuned on the training split, thresholded on its
validation carve-out, checked for degeneracy, compared with the reference and attacked."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy.special import softmax

from auditkit.auditors.performance import headline_metrics
from auditkit.auditors.performance_multiclass import multiclass_headline
from auditkit.predictions import Predictions
from auditkit.privacy.lira import lira_result, shadow_masks
from auditkit.privacy.mia import AttackResult, loss_attack
from auditkit.privacy.plan import RunSpec
from auditkit.privacy.runs import RunJob, RunOutcome, RunSettings, RunTask
from auditkit.privacy.selection import (
    choose_threshold,
    constant_reason,
    degenerate_reason,
    log_probability_of_label,
    subset,
    validation_score,
    why_inconclusive,
)
from auditkit.stats.groups import GroupRules, group_metrics, group_metrics_by_class
from auditkit.stats.paired import paired_changes
from auditkit.training import TrainingData

GROUP_RATES = ("accuracy", "tpr", "fpr")


class PrivacyRun(BaseModel):
    tag: str | None
    target_epsilon: float | None
    epsilon: float | None
    epsilons: dict[str, float]  # the same run under both of Opacus' accountants
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float | None
    clipped_share: float | None
    accountant: str | None
    epochs: int
    learning_rate: float
    threshold: float | None
    validation_score: float
    seconds: float
    metrics: dict[str, Any]
    by_group: dict[str, dict[str, dict[str, float | None]]]
    fairness_cost: dict[str, dict[str, Any]]
    degenerate: str | None = None
    mia: AttackResult | None
    lira: AttackResult | None = None
    attack_reason: str | None = None
    flags: list[str] = Field(default_factory=list)


class RunDone:
    """A finished run: its result and the test predictions later runs are compared with."""

    def __init__(self, result: PrivacyRun, predictions: Predictions) -> None:
        self.result, self.predictions = result, predictions


class Study:
    """Trains, tunes, thresholds, checks and attacks the runs of one audit."""

    def __init__(self, settings, context, trainable, validation, population, y_fit, y_val, y_test, members, nonmembers):
        self.s, self.context, self.trainable = settings, context, trainable
        self.validation, self.population = validation, population
        self.y_fit, self.y_val, self.y_test = y_fit, y_val, y_test
        self.members, self.nonmembers = members, nonmembers
        self.checkpoints = tuple(settings.grid()[1])  # the reference tries every epochs value in one pass
        # LiRA attacks the sampled members and non-members; shadows train on subsets of these rows.
        self.attacked_rows = np.concatenate([members, len(y_fit) + nonmembers])
        self.attacked_y = np.concatenate([y_fit, y_test])[self.attacked_rows]
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

    def task(self, validation: TrainingData | None = None, population: TrainingData | None = None) -> RunTask:
        """Runs train where the executor puts them; a worker given a GPU resolves it there."""
        device = "auto" if self.context.adapter.device.type == "cuda" else "cpu"
        return RunTask(self.trainable, device, validation, population, self.context.progress)

    def map(self, task: RunTask, jobs: list[RunJob]) -> list[RunOutcome]:
        """All jobs as one executor call: a cluster runs as many at once as it has room for."""
        return self.context.executor.map(task, jobs, gpu=self.context.adapter.device.type == "cuda")

    def run_all(self, specs: list[RunSpec], delta: float, rng: np.random.Generator) -> list[RunDone]:
        """The runs of ``specs``, the first the non-private reference the others are compared with.

        Every run of the (learning rate, epochs) grids trains at once, then each run is evaluated in
        order (drawing from ``rng`` as one run after another did), then every LiRA shadow of every
        run trains at once. Seeds are per job, so where a job runs does not change its result.
        """
        trained = self.train(specs, delta)
        done: list[RunDone] = []
        attacks: list[_Shadows] = []
        for spec, (outcome, lr) in zip(specs, trained, strict=True):
            run, masks = self.evaluate(spec, outcome, lr, done[0] if done else None, delta, rng)
            done.append(run)
            if masks is not None:
                attacks.append(_Shadows(run, spec, outcome, self.settings(spec, lr, outcome.epochs, delta), masks))
        self.attack(attacks, delta)
        return done

    def train(self, specs: list[RunSpec], delta: float) -> list[tuple[RunOutcome, float]]:
        """Every (learning rate, epochs) of every spec's grid; per spec the best on the validation carve-out."""
        jobs, owners = [], []
        for k, spec in enumerate(specs):
            checkpoints = self.checkpoints if spec.epsilon is None else ()
            for lr in spec.learning_rates:
                for epochs in spec.epochs:
                    jobs.append(RunJob(self.settings(spec, lr, epochs, delta), spec.epsilon, checkpoints))
                    owners.append((k, lr))
        outcomes = self.map(self.task(validation=self.validation), jobs)
        best: list[tuple[float, RunOutcome, float] | None] = [None] * len(specs)
        for (k, lr), outcome in zip(owners, outcomes, strict=True):
            score = validation_score(self.y_val, outcome.validation_logits)
            if best[k] is None or score > best[k][0]:
                best[k] = (score, outcome, lr)
        return [(b[1], b[2]) for b in best if b is not None]

    def evaluate(
        self,
        spec: RunSpec,
        outcome: RunOutcome,
        lr: float,
        reference: RunDone | None,
        delta: float,
        rng: np.random.Generator,
    ) -> tuple[RunDone, np.ndarray | None]:
        """The run's result but LiRA, and the rows its LiRA shadows will train on (None: no LiRA)."""
        s, data = self.s, self.context.data
        threshold = None
        if outcome.test_logits.shape[1] == 2 and s.threshold == "validation":
            threshold = choose_threshold(self.y_val, softmax(outcome.validation_logits, axis=1)[:, 1])
        test_p = _predictions(data.test, outcome.test_logits, threshold)
        degenerate = degenerate_reason(test_p.y_true, test_p.y_pred, s.n_boot, rng)
        slices = [[f] for f in data.sensitive_features]
        rules = GroupRules(min_group_size=s.min_group_size, n_boot=s.n_boot)
        sensitive = data.test.frame
        multiclass = test_p.n_classes > 2
        if multiclass:  # per-group accuracy over all classes
            _, accuracy = group_metrics_by_class(
                test_p.y_true, test_p.y_pred, test_p.probabilities, test_p.classes, sensitive, slices, rules, rng
            )
            by_group = {
                name: {g: {"accuracy": rep.rates["accuracy"].value} for g, rep in report.groups.items()}
                for name, report in accuracy.items()
            }
        else:
            reports = group_metrics(test_p.y_true, test_p.y_pred, test_p.scores, sensitive, slices, rules, rng)
            by_group = {
                name: {g: {r: rep.rates[r].value for r in GROUP_RATES} for g, rep in report.groups.items()}
                for name, report in reports.items()
            }
        cost = {}
        if reference is not None and not multiclass:  # the paired changes are binary rates
            why = why_inconclusive(degenerate, reference.result.degenerate)
            cost = _fairness_cost(sensitive, test_p, reference.predictions, slices, rules, rng, why)
        mia, masks = None, None
        # A constant model has no decision to attack; one at chance level can still memorise (random labels).
        constant = constant_reason(test_p.y_pred)
        attack_reason = f"the run is degenerate: {constant}" if constant else None
        if constant is None:
            train_loss = -log_probability_of_label(outcome.train_logits, self.y_fit)
            test_loss = -log_probability_of_label(outcome.test_logits, self.y_test)
            mia = loss_attack(train_loss[self.members], test_loss[self.nonmembers], delta)
            if s.lira_shadows:  # drawn here, in the order one run after another drew them
                masks = shadow_masks(len(self.attacked_y), len(self.y_fit), s.lira_shadows, rng)
        flags = [f"degenerate: {degenerate}; no conclusion is drawn from this run"] if degenerate else []
        flags += _bound_flags(outcome, mia)
        private = spec.epsilon is not None
        result = PrivacyRun(
            tag=spec.tag if private else None,
            target_epsilon=spec.epsilon,
            epsilon=outcome.epsilon,
            epsilons=outcome.epsilons,
            delta=delta,
            noise_multiplier=outcome.noise_multiplier,
            sample_rate=outcome.sample_rate,
            steps=outcome.steps,
            max_grad_norm=spec.max_grad_norm if private else None,
            clipped_share=outcome.clipped_share,
            accountant=s.accountant if private else None,
            epochs=outcome.epochs,
            learning_rate=lr,
            threshold=threshold,
            validation_score=validation_score(self.y_val, outcome.validation_logits),
            seconds=round(outcome.seconds, 2),
            metrics=multiclass_headline(test_p.y_true, test_p.y_pred, test_p.n_classes)
            if multiclass
            else headline_metrics(test_p.y_true, test_p.y_pred, test_p.scores),
            by_group=by_group,
            fairness_cost=cost,
            degenerate=degenerate,
            mia=mia,
            attack_reason=attack_reason,
            flags=flags,
        )
        return RunDone(result, test_p), masks

    def attack(self, attacks: list[_Shadows], delta: float) -> None:
        """LiRA on every run in ``attacks``: all their shadows trained as one executor call."""
        jobs = [
            RunJob(replace(a.settings, seed=a.settings.seed + 1 + i), a.spec.epsilon, shadow_rows=np.flatnonzero(m))
            for a in attacks
            for i, m in enumerate(a.masks)  # each shadow its own noise and batches
        ]
        if not jobs:
            return
        logits = iter([o.test_logits for o in self.map(self.task(population=self.attacked), jobs)])
        for a in attacks:
            target = np.concatenate([a.outcome.train_logits, a.outcome.test_logits])[self.attacked_rows]
            shadows = [next(logits) for _ in a.masks]
            lira = lira_result(target, self.attacked_y, self.attacked_member, shadows, a.masks, delta)
            a.run.result.lira = lira
            a.run.result.flags += _bound_flags(a.outcome, lira)


@dataclass
class _Shadows:
    """A run LiRA attacks: how its shadows train (its settings; rows per shadow) and what they score."""

    run: RunDone
    spec: RunSpec
    outcome: RunOutcome
    settings: RunSettings
    masks: np.ndarray


def _bound_flags(outcome: RunOutcome, attack: AttackResult | None) -> list[str]:
    if attack and outcome.epsilon is not None and attack.epsilon_lower_bound > outcome.epsilon:
        return [
            f"the {attack.method} attack's epsilon lower bound {attack.epsilon_lower_bound:.3g} exceeds "
            f"the accounted epsilon {outcome.epsilon:.3g}: a bug in accounting or in the audit"
        ]
    return []


def _fairness_cost(sensitive, test_p, reference, slices, rules, rng, why: str | None) -> dict[str, dict[str, Any]]:
    cost: dict[str, dict[str, Any]] = {}
    changes_by_slice = paired_changes(sensitive, test_p.y_true, reference.y_pred, test_p.y_pred, slices, rules, rng)
    for name, changes in changes_by_slice.items():
        entry: dict[str, Any] = {"ci": {}}
        for key, e in changes.items():
            entry[key] = None if why else e.value
            entry["ci"][key] = list(e.ci) if e.ci and not why else None
            if why or e.reason:
                entry[f"{key}_reason"] = why or e.reason
        cost[name] = entry
    return cost


def _predictions(test, logits: np.ndarray, threshold: float | None) -> Predictions:
    probabilities = softmax(logits, axis=1)
    if threshold is None:
        y_pred = probabilities.argmax(axis=1).astype(np.int64)
    else:
        y_pred = (probabilities[:, 1] >= threshold).astype(np.int64)
    return Predictions(test.ids, test.y, probabilities, y_pred, 0, logits, test.classes)
