"""Group-specific thresholds (fairlearn's ``ThresholdOptimizer``) on a model's scores, and their export.

fairlearn learns, per group, a random choice between two threshold rules on the score: with
probability ``p0`` apply ``operation0`` (``score > t0`` or ``score < t0``), else ``operation1``. Its
``predict`` draws one uniform number per row from ``RandomState(seed)`` and predicts positive when the
row's probability of a positive reaches it. :func:`decide` does exactly that from the exported
rules, so a committed ``mitigation.json`` reproduces fairlearn's predictions on the same rows, in
the same order, with the same seed, without fairlearn or the model at hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from auditkit.errors import AuditError


@dataclass(frozen=True)
class Rule:
    """One threshold operation: ``score > threshold`` or ``score < threshold`` (infinities allowed)."""

    operator: str
    threshold: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return scores > self.threshold if self.operator == ">" else scores < self.threshold


@dataclass(frozen=True)
class GroupRule:
    """A group's randomised rule: ``p0`` of ``rule0``, ``p1`` of ``rule1`` (fairlearn's interpolation)."""

    p0: float
    rule0: Rule
    p1: float
    rule1: Rule
    p_ignore: float = 0.0  # with this probability the constant below replaces the draw (relaxed constraints)
    constant: float = 0.0

    def positive_probability(self, scores: np.ndarray) -> np.ndarray:
        mixed = self.p0 * self.rule0(scores) + self.p1 * self.rule1(scores)
        return self.p_ignore * self.constant + (1 - self.p_ignore) * mixed


class _Scores(ClassifierMixin, BaseEstimator):
    """The audited model to fairlearn: its ``predict`` returns the score column it is given."""

    def fit(self, X, y):  # noqa: N803 - scikit-learn's argument names
        return self

    def predict(self, X):  # noqa: N803
        return np.asarray(X)[:, 0]

    def __sklearn_is_fitted__(self) -> bool:
        return True


def fit_thresholds(
    scores: np.ndarray, y: np.ndarray, groups: np.ndarray, constraint: str, tol: float | None
) -> dict[str, GroupRule]:
    """fairlearn's ``ThresholdOptimizer`` fitted on the scores (prefit: the model is not refitted); ``constraint``
    is fairlearn's own name (demographic_parity, equalized_odds, true_positive_rate_parity)."""
    from fairlearn.postprocessing import ThresholdOptimizer

    optimizer = ThresholdOptimizer(
        estimator=_Scores(), constraints=constraint, objective="accuracy_score",
        prefit=True, predict_method="predict", tol=tol,
    )  # fmt: skip
    optimizer.fit(scores[:, None], y, sensitive_features=groups)
    return rules_of(optimizer)


def rules_of(optimizer) -> dict[str, GroupRule]:
    """The fitted optimizer's per-group rules as plain data."""
    out = {}
    for group, b in optimizer.interpolated_thresholder_.interpolation_dict.items():
        out[str(group)] = GroupRule(
            float(b.p0), Rule(b.operation0.operator, float(b.operation0.threshold)),
            float(b.p1), Rule(b.operation1.operator, float(b.operation1.threshold)),
            float(b.get("p_ignore", 0.0)), float(b.get("prediction_constant", 0.0)),
        )  # fmt: skip
    return out


def positive_probability(rules: dict[str, GroupRule], scores: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Each row's probability of a positive decision; a group the rules never saw is an error
    (fairlearn would give its rows probability 0, a silent rejection of the whole group)."""
    groups = np.asarray(groups, dtype=str)
    unseen = sorted(set(groups) - set(rules))
    if unseen:
        raise AuditError(
            f"mitigation: group '{unseen[0]}' has no fitted thresholds (fitted for: {', '.join(sorted(rules))})"
        )
    out = np.zeros(len(scores))
    for group, rule in rules.items():
        mask = groups == group
        out[mask] = rule.positive_probability(scores[mask])
    return out


def decide(rules: dict[str, GroupRule], scores: np.ndarray, groups: Sequence[str], seed: int) -> np.ndarray:
    """0/1 decisions, drawn as fairlearn's ``predict(random_state=seed)`` draws them."""
    probability = positive_probability(rules, scores, groups)
    return (probability >= np.random.RandomState(seed).rand(len(probability))).astype(np.int64)
