"""The runs of one privacy audit: trained and tuned on the training split, thresholded on its
validation carve-out, checked for degeneracy, compared with the reference and attacked."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy.special import softmax

from auditkit.auditors.performance import headline_metrics
from auditkit.auditors.performance_multiclass import multiclass_headline
from auditkit.predictions import Predictions
from auditkit.privacy.lira import lira_attack
from auditkit.privacy.mia import AttackResult, loss_attack
from auditkit.privacy.plan import RunSpec
from auditkit.privacy.runs import RunOutcome, RunSettings, train_run
from auditkit.privacy.selection import (
    choose_threshold,
    constant_reason,
    degenerate_reason,
    log_probability_of_label,
    subset,
    validation_score,
)
from auditkit.stats.groups import GroupRules, group_metrics, group_metrics_by_class
from auditkit.stats.paired import paired_changes
from auditkit.training import Trainable

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

    def train(self, spec: RunSpec, delta: float) -> tuple[RunOutcome, float]:
        """Every (learning rate, epochs) of the grid; the best on the validation carve-out."""
        device, progress = self.context.adapter.device, self.context.progress
        best: tuple[float, RunOutcome, float] | None = None
        for lr in spec.learning_rates:
            for epochs in spec.epochs:
                outcome = train_run(
                    self.trainable,
                    self.settings(spec, lr, epochs, delta),
                    spec.epsilon,
                    device,
                    progress,
                    self.validation,
                    self.checkpoints if spec.epsilon is None else (),
                )
                score = validation_score(self.y_val, outcome.validation_logits)
                if best is None or score > best[0]:
                    best = (score, outcome, lr)
        assert best is not None
        return best[1], best[2]

    def run(self, spec: RunSpec, reference: RunDone | None, delta: float, rng: np.random.Generator) -> RunDone:
        s, data = self.s, self.context.data
        outcome, lr = self.train(spec, delta)
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
            why = _why_inconclusive(degenerate, reference.result.degenerate)
            cost = _fairness_cost(sensitive, test_p, reference.predictions, slices, rules, rng, why)
        mia = lira = None
        # A constant model has no decision to attack; one at chance level can still memorise (random labels).
        constant = constant_reason(test_p.y_pred)
        attack_reason = f"the run is degenerate: {constant}" if constant else None
        if constant is None:
            train_loss = -log_probability_of_label(outcome.train_logits, self.y_fit)
            test_loss = -log_probability_of_label(outcome.test_logits, self.y_test)
            mia = loss_attack(train_loss[self.members], test_loss[self.nonmembers], delta)
            if s.lira_shadows:
                lira = self.lira(spec, outcome, lr, delta, rng)
        flags = [f"degenerate: {degenerate}; no conclusion is drawn from this run"] if degenerate else []
        for attack in (mia, lira):
            if attack and outcome.epsilon is not None and attack.epsilon_lower_bound > outcome.epsilon:
                flags.append(
                    f"the {attack.method} attack's epsilon lower bound {attack.epsilon_lower_bound:.3g} exceeds "
                    f"the accounted epsilon {outcome.epsilon:.3g}: a bug in accounting or in the audit"
                )
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
            lira=lira,
            attack_reason=attack_reason,
            flags=flags,
        )
        return RunDone(result, test_p)

    def lira(self, spec: RunSpec, outcome: RunOutcome, lr: float, delta: float, rng: np.random.Generator):
        """Shadows trained as this run was (same settings, epsilon, chosen lr and epochs) on population subsets."""
        n_fit = len(self.y_fit)
        rows = np.concatenate([self.members, n_fit + self.nonmembers])
        y = np.concatenate([self.y_fit, self.y_test])[rows]
        target = np.concatenate([outcome.train_logits, outcome.test_logits])[rows]
        is_member = np.arange(len(rows)) < len(self.members)
        run_settings = self.settings(spec, lr, outcome.epochs, delta)
        device, progress = self.context.adapter.device, self.context.progress
        attacked = subset(self.population, rows)

        def train_shadow(chosen: np.ndarray, index: int) -> np.ndarray:
            shadow = Trainable(self.trainable.fresh, subset(attacked, chosen), attacked, "shadow")
            own = replace(run_settings, seed=run_settings.seed + 1 + index)  # its own noise and batches
            return train_run(shadow, own, spec.epsilon, device, progress).test_logits

        return lira_attack(target, y, is_member, n_fit, train_shadow, self.s.lira_shadows, delta, rng)


def _why_inconclusive(run: str | None, reference: str | None) -> str | None:
    if reference:
        return f"the non-private reference run is degenerate: {reference}"
    return f"this run is degenerate: {run}" if run else None


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
