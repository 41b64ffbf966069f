"""fairlearn's reductions (``ExponentiatedGradient``, ``GridSearch``) on a model auditkit can refit.

A reduction refits the model many times with sample weights; a scikit-learn ``Pipeline`` takes
weights only as ``<last step>__sample_weight``, so :class:`LastStepWeights` routes them there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

#: auditkit's constraint names -> fairlearn's moment classes (reductions).
MOMENTS = {
    "demographic_parity": "DemographicParity",
    "equalized_odds": "EqualizedOdds",
    "true_positive_rate_parity": "TruePositiveRateParity",
}


class LastStepWeights(ClassifierMixin, BaseEstimator):
    """A pipeline (or estimator) whose ``fit(X, y, sample_weight)`` hands the weights to its last step."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X, y, sample_weight=None):  # noqa: N803 - scikit-learn's argument names
        self.estimator_ = clone(self.estimator)
        params = {}
        if sample_weight is not None:
            steps = getattr(self.estimator_, "steps", None)
            params = {f"{steps[-1][0]}__sample_weight" if steps else "sample_weight": np.asarray(sample_weight)}
        self.estimator_.fit(X, y, **params)
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X):  # noqa: N803
        return self.estimator_.predict(X)

    def predict_proba(self, X):  # noqa: N803
        return self.estimator_.predict_proba(X)


@dataclass
class Reduction:
    """A fitted reduction: its fairlearn object and what ``mitigation.json`` records of it."""

    fitted: Any
    weights: list[float]  # of each predictor in the randomised classifier (GridSearch: one-hot on the best)
    lambdas: list[list[float]]  # the Lagrange multipliers of each predictor, as fairlearn reports them

    def predict(self, X: pd.DataFrame, seed: int) -> np.ndarray:  # noqa: N803
        if hasattr(self.fitted, "weights_"):  # ExponentiatedGradient: a randomised mixture
            return np.asarray(self.fitted.predict(X, random_state=seed), dtype=np.int64)
        return np.asarray(self.fitted.predict(X), dtype=np.int64)


def fit_reduction(
    method: str, constraint: str, strength: float | None, estimator: Any,
    X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, seed: int,
) -> Reduction:  # fmt: skip
    """``method`` is ``exponentiated_gradient`` (``strength``: its ``eps``, the allowed violation) or
    ``grid_search`` (``strength``: its ``constraint_weight``, the weight of fairness against accuracy)."""
    import fairlearn.reductions as reductions

    moment = getattr(reductions, MOMENTS[constraint])()
    np.random.seed(seed)  # GridSearch draws its grid from numpy's global generator
    if method == "exponentiated_gradient":
        fitted = reductions.ExponentiatedGradient(
            LastStepWeights(estimator), constraints=moment, eps=0.01 if strength is None else strength
        )
    else:
        fitted = reductions.GridSearch(
            LastStepWeights(estimator), constraints=moment, grid_size=11,
            constraint_weight=0.5 if strength is None else strength,
        )  # fmt: skip
    fitted.fit(X, y, sensitive_features=groups)
    if hasattr(fitted, "weights_"):
        weights = [float(w) for w in fitted.weights_]
    else:
        weights = [float(i == fitted.best_idx_) for i in range(len(fitted.predictors_))]
    lambdas = [[float(v) for v in fitted.lambda_vecs_[c]] for c in fitted.lambda_vecs_.columns]
    return Reduction(fitted, weights, lambdas)
