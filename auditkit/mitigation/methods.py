"""The mitigation methods a config names, each fitted on the fit rows and able to decide new rows."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from auditkit.adapters.capabilities import Refittable
from auditkit.config import StrictModel
from auditkit.mitigation.reductions import Reduction, fit_reduction
from auditkit.mitigation.thresholds import GroupRule, decide, fit_thresholds

if TYPE_CHECKING:
    from auditkit.auditors.base import AuditContext
    from auditkit.data import Split
    from auditkit.mitigation.evaluate import FitRows
    from auditkit.predictions import Predictions

Constraint = Literal["demographic_parity", "equalized_odds", "true_positive_rate_parity"]


class MethodSpec(StrictModel):
    method: Literal["threshold", "exponentiated_gradient", "grid_search"] = Field(
        description="threshold: fairlearn's ThresholdOptimizer on the scores (any adapter); exponentiated_gradient "
        "and grid_search: fairlearn's reductions, refitting the model (scikit-learn pipelines)."
    )
    constraint: Constraint = "demographic_parity"
    strengths: list[float] = Field(
        default_factory=list,
        description="Constraint strengths for the trade-off chart, the first one reported, gated and exported. "
        "threshold: tol, the relaxed constraint's allowed gap (0 = exact); exponentiated_gradient: eps, the "
        "allowed violation; grid_search: constraint_weight, fairness's weight against accuracy (0 to 1).",
    )

    @model_validator(mode="after")
    def _strengths_fit_the_method(self) -> MethodSpec:
        if self.method == "threshold" and self.strengths and self.constraint == "equalized_odds":
            raise ValueError("strengths (tol): fairlearn relaxes demographic_parity and true_positive_rate_parity only")
        low, high = {"threshold": (0.0, 1.0), "exponentiated_gradient": (1e-6, 1.0), "grid_search": (0.0, 1.0)}[
            self.method
        ]
        for value in self.strengths:
            if not low <= value <= high:
                raise ValueError(f"strengths: {value:g} is outside [{low:g}, {high:g}] for {self.method}")
        return self


@dataclass
class Fitted:
    """One fitted method at one strength."""

    spec: MethodSpec
    strength: float | None
    seed: int
    rules: dict[str, GroupRule] | None = None  # threshold
    reduction: Reduction | None = None  # reductions

    def decide(self, test: Predictions, groups: np.ndarray, split: Split, context: AuditContext) -> np.ndarray:
        if self.rules is not None:
            return decide(self.rules, test.scores, groups, self.seed)
        assert self.reduction is not None and isinstance(context.adapter, Refittable)  # checked at validate
        return self.reduction.predict(context.adapter.model_inputs(split), self.seed)

    def export(self) -> dict[str, Any]:
        """What ``mitigation.json`` records: thresholds per group, or the reduction's weights."""
        out: dict[str, Any] = {
            "method": self.spec.method,
            "constraint": self.spec.constraint,
            "strength": self.strength,
            "uses_sensitive_feature_at_decision": self.rules is not None,
        }
        if self.rules is not None:  # JSON has no infinity: an always/never rule's threshold is "inf" or "-inf"
            out["groups"] = {group: _finite(asdict(rule)) for group, rule in sorted(self.rules.items())}
        elif self.reduction is not None:
            out["predictor_weights"] = self.reduction.weights
            out["lambdas"] = self.reduction.lambdas
            out["applies_to"] = "the refitted predictors of this audit only: --apply-mitigation applies thresholds"
        return out


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def fit_method(spec: MethodSpec, strength: float | None, fit: FitRows, context: AuditContext) -> Fitted:
    if spec.method == "threshold":
        rules = fit_thresholds(fit.scores, fit.y, fit.groups, spec.constraint, strength)
        return Fitted(spec, strength, context.seed, rules=rules)
    adapter = context.adapter
    assert isinstance(adapter, Refittable)  # checked at validate
    reduction = fit_reduction(
        spec.method, spec.constraint, strength, adapter.unfitted(),
        adapter.model_inputs(fit.split), fit.y, fit.groups, context.seed,
    )  # fmt: skip
    return Fitted(spec, strength, context.seed, reduction=reduction)
