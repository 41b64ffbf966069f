"""Per-group rates and between-group disparities with bootstrap intervals.

This is the one implementation of group metrics: the fairness auditor reports it and
the privacy auditor reuses it for each of its runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from auditkit.stats.cells import PRED, CellTable, Confusion, Y
from auditkit.stats.intervals import (
    delong_auc,
    largest_gap_interval,
    percentile_intervals,
    smallest_ratio_interval,
)
from auditkit.stats.rates import DENOMINATOR, RATES, difference, rate, ratio

GROUP_RATES = tuple(RATES)  # base_rate, selection_rate, tpr, fpr, fnr, precision, accuracy

#: disparity -> (rates it compares, how)
DISPARITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "demographic_parity_difference": (("selection_rate",), "difference"),
    "demographic_parity_ratio": (("selection_rate",), "ratio"),
    "equalized_odds_difference": (("tpr", "fpr"), "difference"),
    "equalized_odds_ratio": (("tpr", "fpr"), "ratio"),
    "equal_opportunity_difference": (("tpr",), "difference"),
    "equal_opportunity_ratio": (("tpr",), "ratio"),
    "accuracy_difference": (("accuracy",), "difference"),
}


@dataclass(frozen=True)
class GroupRules:
    min_group_size: int = 30
    min_class_size: int = 10
    method: str = "between_groups"
    confidence: float = 0.95
    n_boot: int = 1000


@dataclass
class Estimate:
    """A point value with its interval, or None and why."""

    value: float | None
    ci: tuple[float, float] | None = None
    reason: str | None = None


@dataclass
class GroupReport:
    n: int
    n_positive: int
    n_predicted_positive: int
    rates: dict[str, Estimate]
    insufficient: dict[str, str] = field(default_factory=dict)  # rate (or "all") -> why

    @property
    def status(self) -> str:
        return "insufficient" if "all" in self.insufficient else "ok"


@dataclass
class SliceReport:
    groups: dict[str, GroupReport]
    disparities: dict[str, Estimate]
    compared: dict[str, list[str]]  # disparity -> groups it compared


def slice_name(features: Sequence[str]) -> str:
    return "*".join(features)


def group_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    sensitive: pd.DataFrame,
    slices: Sequence[Sequence[str]],
    rules: GroupRules,
    rng: np.random.Generator,
) -> dict[str, SliceReport]:
    """Rates per group and disparities per slice; every slice shares the same bootstrap resamples."""
    cells, counts = _cells(y_true, y_pred, sensitive, slices, rules, rng)
    cell_y, cell_pred = cells.keys[Y].to_numpy(), cells.keys[PRED].to_numpy()
    return _reports(cells, counts, cell_y, cell_pred, y_true, scores, slices, rules, "")


def group_metrics_by_class(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    sensitive: pd.DataFrame,
    slices: Sequence[Sequence[str]],
    rules: GroupRules,
    rng: np.random.Generator,
) -> tuple[dict[str, SliceReport], dict[str, SliceReport]]:
    """Multiclass: the binary rates one-vs-rest for each class (slices named ``<slice>|class=<name>``),
    and per-group accuracy with its difference (slices named as given); one set of resamples for all."""
    cells, counts = _cells(y_true, y_pred, sensitive, slices, rules, rng)
    cell_y, cell_pred = cells.keys[Y].to_numpy(), cells.keys[PRED].to_numpy()
    reports: dict[str, SliceReport] = {}
    for c, name in enumerate(classes):
        one = (y_true == c).astype(np.int64)
        reports |= _reports(
            cells, counts, (cell_y == c).astype(int), (cell_pred == c).astype(int), one,
            probabilities[:, c], slices, rules, f"|class={name}",
        )  # fmt: skip
    accuracy = {}
    constant = None
    if len(np.unique(y_pred)) == 1:
        constant = "every row is predicted one class: a constant classifier's accuracy difference is no evidence"
    for features in slices:
        codes, names = cells.group_codes(features)
        # correct rows as true positives, wrong ones as false positives: the "accuracy" rate is then correct / n
        confusion = Confusion.by_group(
            counts, codes, len(names), (cell_y == cell_pred).astype(int), np.ones_like(cell_y)
        )
        accuracy[slice_name(features)] = _accuracy_slice(confusion, names, rules, constant)
    return reports, accuracy


def _cells(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    slices: Sequence[Sequence[str]],
    rules: GroupRules,
    rng: np.random.Generator,
) -> tuple[CellTable, np.ndarray]:
    columns = sorted({f for s in slices for f in s})
    frame = sensitive[columns].astype(str).reset_index(drop=True).assign(**{Y: y_true, PRED: y_pred})
    cells = CellTable.from_frame(frame, [*columns, Y, PRED])
    return cells, np.vstack([cells.observed(), cells.replicates(rules.n_boot, rng)])  # row 0: observed


def _reports(
    cells: CellTable,
    counts: np.ndarray,
    cell_y: np.ndarray,
    cell_pred: np.ndarray,
    y_true: np.ndarray,
    scores: np.ndarray | None,
    slices: Sequence[Sequence[str]],
    rules: GroupRules,
    suffix: str,
) -> dict[str, SliceReport]:
    reports = {}
    for features in slices:
        codes, names = cells.group_codes(features)
        confusion = Confusion.by_group(counts, codes, len(names), cell_y, cell_pred)
        row_groups = codes[cells.row_cells]
        reports[slice_name(features) + suffix] = _slice(confusion, names, row_groups, y_true, scores, rules)
    return reports


def _accuracy_slice(confusion: Confusion, names: list[str], rules: GroupRules, constant: str | None) -> SliceReport:
    """Per-group accuracy (correct / n) and the accuracy difference over groups of min_group_size rows."""
    values = {"accuracy": rate(confusion, "accuracy")}
    bounds = percentile_intervals(values["accuracy"][1:], rules.confidence)
    groups = {}
    for g, group in enumerate(names):
        n = int(confusion.n[0, g])
        report = GroupReport(
            n, int(confusion.tp[0, g]), n, {"accuracy": _estimate(values["accuracy"][0, g], bounds[g], "accuracy")}
        )
        if n < rules.min_group_size:
            report.insufficient = {"all": f"{n} rows, below min_group_size {rules.min_group_size}"}
        groups[group] = report
    eligible = [g for g, name in enumerate(names) if groups[name].status == "ok"]
    overall = {"accuracy": rate(confusion.overall(), "accuracy")}
    if constant:
        disparity = Estimate(None, reason=constant)
    else:
        disparity = _disparity(values, overall, "accuracy_difference", eligible, rules)
    return SliceReport(
        groups, {"accuracy_difference": disparity}, {"accuracy_difference": [names[g] for g in eligible]}
    )


def _slice(
    confusion: Confusion,
    names: list[str],
    row_groups: np.ndarray,
    y_true: np.ndarray,
    scores: np.ndarray | None,
    rules: GroupRules,
) -> SliceReport:
    values = {name: rate(confusion, name) for name in GROUP_RATES}  # each (1 + B, G)
    bounds = {name: percentile_intervals(v[1:], rules.confidence) for name, v in values.items()}
    observed = Confusion(*(a[0] for a in (confusion.tp, confusion.fp, confusion.tn, confusion.fn)))
    groups: dict[str, GroupReport] = {}
    for g, group in enumerate(names):
        rates = {name: _estimate(values[name][0, g], bounds[name][g], name) for name in GROUP_RATES}
        if scores is not None:
            rates["roc_auc"] = _auc(y_true[row_groups == g], scores[row_groups == g], rules.confidence)
        report = GroupReport(
            int(observed.n[g]), int(observed.positives[g]), int(observed.predicted_positives[g]), rates
        )
        report.insufficient = _insufficient(observed, g, rules)
        groups[group] = report
    overall = {name: rate(confusion.overall(), name) for name in GROUP_RATES}  # (1 + B, 1)
    constant = _constant_reason(int(observed.predicted_positives.sum()), int(observed.n.sum()))
    disparities, compared = {}, {}
    for disparity, (needed, _) in DISPARITIES.items():
        eligible = [g for g, name in enumerate(names) if not _excluded(groups[name], needed)]
        compared[disparity] = [names[g] for g in eligible]
        if constant:
            disparities[disparity] = Estimate(None, reason=constant)
        else:
            disparities[disparity] = _disparity(values, overall, disparity, eligible, rules)
    return SliceReport(groups, disparities, compared)


def _constant_reason(predicted_positive: int, n: int) -> str | None:
    """Every group of a classifier that predicts one label for every row has the same selection
    rate, TPR and FPR: its parity is no evidence of fairness, so its disparities are null."""
    if n == 0 or 0 < predicted_positive < n:
        return None
    which = "every row is predicted positive" if predicted_positive else "no row is predicted positive"
    return f"{which}: the disparities of a constant classifier are not evidence of fairness"


def _insufficient(observed: Confusion, g: int, rules: GroupRules) -> dict[str, str]:
    if observed.n[g] < rules.min_group_size:
        return {"all": f"{int(observed.n[g])} rows, below min_group_size {rules.min_group_size}"}
    counts = {
        "positives": observed.positives[g],
        "negatives": observed.negatives[g],
        "predicted positives": observed.predicted_positives[g],
    }
    return {
        name: f"{int(counts[what])} {what}, below min_class_size {rules.min_class_size}"
        for name, what in DENOMINATOR.items()
        if counts[what] < rules.min_class_size
    }


def _excluded(group: GroupReport, needed: Sequence[str]) -> bool:
    return "all" in group.insufficient or any(r in group.insufficient for r in needed)


#: A disparity named in DISPARITIES, or spelled out: (the statistics it compares, "difference" or "ratio").
Spec = str | tuple[tuple[str, ...], str]


def _spec(metric: Spec) -> tuple[tuple[str, ...], str]:
    return DISPARITIES[metric] if isinstance(metric, str) else metric


def disparity_series(
    values: dict[str, np.ndarray], overall: dict[str, np.ndarray], metric: Spec, eligible: list[int], method: str
) -> np.ndarray:
    """One disparity over the ``eligible`` groups for every replicate: rates ``(R, G)`` -> ``(R,)``.

    Equalized odds takes the worst of its TPR and FPR parts, as fairlearn's agg="worst_case" does.
    """
    needed, how = _spec(metric)
    combine = difference if how == "difference" else ratio
    stacked = np.vstack([combine(values[r][:, eligible], overall[r], method) for r in needed])
    with np.errstate(invalid="ignore"):
        series = stacked.max(axis=0) if how == "difference" else stacked.min(axis=0)
    return np.where(np.isnan(stacked).any(axis=0), np.nan, series)


def disparity_components(
    values: dict[str, np.ndarray], overall: dict[str, np.ndarray], metric: Spec, eligible: list[int], method: str
) -> np.ndarray:
    """The signed pieces a disparity is the largest (difference) or smallest folded (ratio) of: ``(R, K)``.

    Differences: every pair of groups (between_groups) or every group against overall; ratios: the
    same, as the smaller-at-the-estimate rate over the larger, so the point estimate never divides by 0.
    """
    needed, how = _spec(metric)
    pieces = []
    for r in needed:
        v = values[r][:, eligible]
        if method == "between_groups":
            for a in range(len(eligible)):
                for b in range(a + 1, len(eligible)):
                    small, large = (a, b) if v[0, a] <= v[0, b] else (b, a)
                    pieces.append(v[:, a] - v[:, b] if how == "difference" else _divide(v[:, small], v[:, large]))
        else:
            for a in range(len(eligible)):
                pieces.append(v[:, a] - overall[r][:, 0] if how == "difference" else _divide(v[:, a], overall[r][:, 0]))
    return np.column_stack(pieces)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def confusion_disparity(confusion: Confusion, metric: str, eligible: list[int], method: str) -> np.ndarray:
    """One disparity straight from per-group confusion counts ``(R, G)``: what paired comparisons
    (baseline gates, privacy runs) compute for each of their two prediction sets."""
    needed, _ = DISPARITIES[metric]
    values = {r: rate(confusion, r) for r in needed}
    overall = {r: rate(confusion.overall(), r) for r in needed}
    return disparity_series(values, overall, metric, eligible, method)


def group_disparity(
    values: np.ndarray, overall: np.ndarray, how: str, eligible: list[int], rules: GroupRules
) -> Estimate:
    """The difference or ratio of any per-group statistic, ``values`` ``(1 + B, G)`` with the observed
    row first and ``overall`` ``(1 + B, 1)`` the statistic over every group in the same resamples:
    the same rules and simultaneous intervals as the classification disparities (entity F1 per
    sentence group, name-probe recall per group of names)."""
    return _disparity({"statistic": values}, {"statistic": overall}, (("statistic",), how), eligible, rules)


def _disparity(
    values: dict[str, np.ndarray],
    overall: dict[str, np.ndarray],
    metric: Spec,
    eligible: list[int],
    rules: GroupRules,
) -> Estimate:
    if len(eligible) < 2:
        return Estimate(None, reason=f"{len(eligible)} groups meet the minimum-size rules; need 2 to compare")
    series = disparity_series(values, overall, metric, eligible, rules.method)
    if np.isnan(series[0]):
        return Estimate(None, reason="undefined: every compared group has a rate of 0 in the denominator")
    if np.isnan(percentile_intervals(series[1:, None], rules.confidence)[0, 0]):
        return Estimate(float(series[0]), None, "interval withheld: undefined in over 1% of bootstrap resamples")
    # Not the percentile interval: a largest gap is biased upward near 0 and its percentile interval
    # can exclude the estimate; the simultaneous-box interval always holds it (see intervals.py).
    components = disparity_components(values, overall, metric, eligible, rules.method)
    interval = largest_gap_interval if _spec(metric)[1] == "difference" else smallest_ratio_interval
    return Estimate(float(series[0]), interval(components[0], components[1:], rules.confidence))


def _estimate(value: float, bounds: np.ndarray, name: str) -> Estimate:
    if np.isnan(value):
        return Estimate(None, reason=f"no {DENOMINATOR.get(name, 'rows')} in this group")
    if np.isnan(bounds[0]):
        return Estimate(float(value), None, "interval withheld: undefined in over 1% of bootstrap resamples")
    return Estimate(float(value), (float(bounds[0]), float(bounds[1])))


def _auc(y_true: np.ndarray, scores: np.ndarray, confidence: float) -> Estimate:
    if y_true.min(initial=1) == y_true.max(initial=0):
        return Estimate(None, reason="the group holds only one label")
    value, ci = delong_auc(y_true, scores, confidence)
    return Estimate(value, ci)
