"""The runs of one privacy audit: trained and tuned on the training split, thresholded on its
validation carve-out, checked for degeneracy, compared with the reference and attacked."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy.special import softmax

from auditkit.auditors.performance import headline_metrics
from auditkit.auditors.performance_multiclass import multiclass_headline
from auditkit.predictions import Predictions
from auditkit.privacy.mia import AttackResult
from auditkit.privacy.plan import RunSpec
from auditkit.privacy.selection import choose_threshold, constant_reason, degenerate_reason, why_inconclusive
from auditkit.privacy.sweep import Shadowed, Sweep, Trained, bound_flags
from auditkit.stats.groups import GroupRules, group_metrics, group_metrics_by_class
from auditkit.stats.paired import paired_changes

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


class Study(Sweep):
    """Trains, tunes, thresholds, checks and attacks the runs of one classification audit."""

    def __init__(self, settings, context, trainable, validation, population, y_fit, y_val, y_test, members, nonmembers):
        super().__init__(settings, context, trainable, validation, population, members, nonmembers)
        self.y_fit, self.y_val, self.y_test = y_fit, y_val, y_test

    def run_all(self, specs: list[RunSpec], delta: float, rng: np.random.Generator) -> list[RunDone]:
        """The runs of ``specs``, the first the non-private reference the others are compared with.

        Every run of the (learning rate, epochs) grids trains at once, then each run is evaluated in
        order (drawing from ``rng`` as one run after another did), then every LiRA shadow of every
        run trains at once. Seeds are per job, so where a job runs does not change its result.
        """
        done: list[RunDone] = []
        attacks: list[tuple[RunDone, Shadowed]] = []
        for spec, trained in zip(specs, self.train(specs, delta), strict=True):
            run, masks = self.evaluate(spec, trained, done[0] if done else None, delta, rng)
            done.append(run)
            if masks is not None:
                settings = self.settings(spec, trained.learning_rate, trained.outcome.epochs, delta)
                attacks.append((run, Shadowed(spec, trained.outcome, settings, masks)))
        lira = self.attack([a for _, a in attacks], delta)
        for (run, shadowed), result in zip(attacks, lira, strict=True):
            run.result.lira = result
            run.result.flags += bound_flags(shadowed.outcome, result)
        return done

    def evaluate(
        self,
        spec: RunSpec,
        trained: Trained,
        reference: RunDone | None,
        delta: float,
        rng: np.random.Generator,
    ) -> tuple[RunDone, np.ndarray | None]:
        """The run's result but LiRA, and the rows its LiRA shadows will train on (None: no LiRA)."""
        s, data, outcome = self.s, self.context.data, trained.outcome
        threshold = None
        if outcome.test.logits.shape[1] == 2 and s.threshold == "validation" and outcome.validation is not None:
            threshold = choose_threshold(self.y_val, softmax(outcome.validation.logits, axis=1)[:, 1])
        test_p = _predictions(data.test, outcome.test.logits, threshold)
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
            mia = self.loss_attack(outcome, delta)
            masks = self.shadow_masks(rng)  # drawn here, in the order one run after another drew them
        flags = [f"degenerate: {degenerate}; no conclusion is drawn from this run"] if degenerate else []
        flags += bound_flags(outcome, mia)
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
            learning_rate=trained.learning_rate,
            threshold=threshold,
            validation_score=trained.validation_score,
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
