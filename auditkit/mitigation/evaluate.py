"""The rows a mitigation is fitted on, and how a set of decisions is judged on the evaluation rows.

Judged with the fairness core (the same group rules and simultaneous intervals as the fairness
auditor) and, against the unmitigated decisions on the same rows, a paired bootstrap of the
accuracy cost: one multinomial resample of the (group, label, decision A, decision B) cells feeds both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from auditkit.data import Split
from auditkit.predictions import Predictions
from auditkit.stats.cells import CellTable
from auditkit.stats.groups import DISPARITIES, Estimate, GroupRules, SliceReport, group_metrics
from auditkit.stats.paired import series_estimate

if TYPE_CHECKING:
    from auditkit.auditors.base import AuditContext

#: The disparity each constraint equalises, drawn against accuracy in the trade-off chart.
CONSTRAINT_DISPARITY = {
    "demographic_parity": "demographic_parity_difference",
    "equalized_odds": "equalized_odds_difference",
    "true_positive_rate_parity": "equal_opportunity_difference",
}


@dataclass
class FitRows:
    """What a method is fitted on, and which test rows it is then judged on (None: all of them)."""

    split: Split
    scores: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    description: str
    judged_on: np.ndarray | None = None


def fit_rows(context: AuditContext, share: float, feature: str) -> FitRows:
    """``share`` of the training split, drawn with the audit's seed and scored by the audited model.

    A file of predictions has no training split (every row is audited): then ``share`` of the audited
    rows is the fit carve-out and the methods are judged on the others, never on the rows they saw."""
    train, test = context.data.train, context.data.test
    source = train if len(train) else test
    n = max(1, math.ceil(share * len(source)))
    order = np.random.default_rng(context.seed).permutation(len(source))
    positions = np.sort(order[:n])
    split = source.subset(positions, "mitigation fit")
    groups = split.frame[feature].astype(str).to_numpy()
    if len(train):
        scored = context.adapter.predict(split, context.progress)
        assert isinstance(scored, Predictions)
        text = f"{n} rows, a seeded {share:.0%} carve-out of the training split (never the test rows)"
        return FitRows(split, scored.scores, split.y.astype(np.int64), groups, text)
    audited = context.predictions_of(Predictions, "test")
    text = (
        f"{n} rows, a seeded {share:.0%} carve-out of the audited rows (a file of predictions has no training "
        f"split); the methods are judged on the other {len(source) - n}"
    )
    return FitRows(split, audited.scores[positions], split.y.astype(np.int64), groups, text, np.sort(order[n:]))


def rows_of(p: Predictions, positions: np.ndarray) -> Predictions:
    """The predictions of some rows only."""
    return Predictions(
        p.ids[positions], p.y_true[positions], p.probabilities[positions], p.y_pred[positions], classes=p.classes
    )


@dataclass
class Judged:
    accuracy: Estimate
    cost: Estimate | None  # paired: accuracy without mitigation minus with it
    report: SliceReport


class Evaluation:
    """The test rows every method is judged on, with their groups, rules and seed."""

    def __init__(self, test: Predictions, groups: np.ndarray, rules: GroupRules, seed: int) -> None:
        self.test, self.groups, self.rules, self.seed = test, groups, rules, seed
        self.frame = pd.DataFrame({"group": groups})

    def point(self, judged: Judged, constraint: str | None) -> dict[str, Any]:
        """A trade-off point: accuracy and the constraint's disparity (intervals as in the table)."""
        metric = CONSTRAINT_DISPARITY.get(constraint or "", "demographic_parity_difference")
        value = judged.report.disparities[metric]
        return {
            "accuracy": judged.accuracy.value,
            "accuracy_ci": list(judged.accuracy.ci) if judged.accuracy.ci else None,
            "disparity": metric,
            "value": value.value,
            "ci": list(value.ci) if value.ci else None,
        }


def evaluate(e: Evaluation, decisions: np.ndarray, paired_with: np.ndarray | None = None) -> Judged:
    y = e.test.y_true.astype(np.int64)
    rng = np.random.default_rng(e.seed)
    report = group_metrics(y, decisions, e.test.scores, e.frame, [["group"]], e.rules, rng)["group"]
    report = SliceReport(report.groups, {k: report.disparities[k] for k in DISPARITIES}, report.compared)
    base = paired_with if paired_with is not None else decisions
    cells = CellTable.from_frame(pd.DataFrame({"y": y, "a": decisions, "b": base}), ["y", "a", "b"])
    counts = np.vstack([cells.observed(), cells.replicates(e.rules.n_boot, rng)]).astype(np.float64)
    keys = cells.keys
    correct_a = (keys["y"] == keys["a"]).to_numpy()
    correct_b = (keys["y"] == keys["b"]).to_numpy()
    total = counts.sum(axis=1)
    accuracy_a = counts[:, correct_a].sum(axis=1) / total
    accuracy_b = counts[:, correct_b].sum(axis=1) / total
    accuracy = series_estimate(accuracy_a, e.rules.confidence)
    cost = series_estimate(accuracy_b - accuracy_a, e.rules.confidence) if paired_with is not None else None
    return Judged(accuracy, cost, report)

