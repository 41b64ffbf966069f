"""Group rates, disparities and binned ROC AUC from :class:`PredictionCounts`.

The rates and disparities are the in-memory ones, computed by the same bootstrap over the
same cell table: for the same counts and seed they are equal to the last digit. Only ROC AUC
differs: it comes from the score histograms (see :mod:`auditkit.streaming.auc`) with its
binning error bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from auditkit.execution.base import Executor
from auditkit.stats.cells import PRED, Confusion, Y
from auditkit.stats.groups import Estimate, GroupRules, SliceReport, _slice, slice_name
from auditkit.streaming.auc import binned_auc
from auditkit.streaming.counts import CountSpec, PredictionCounts, count_predictions


def group_metrics_from_counts(
    counts: PredictionCounts, slices: Sequence[Sequence[str]], rules: GroupRules, rng: np.random.Generator
) -> tuple[dict[str, SliceReport], dict[str, dict[str, float]]]:
    """Like :func:`auditkit.stats.groups.group_metrics`, from counts; also the AUC error bound
    of every group (slice -> group -> bound)."""
    columns = sorted({f for s in slices for f in s})
    counts = counts.marginal(columns).sorted()
    cells = counts.cell_table()
    draws = np.vstack([cells.observed(), cells.replicates(rules.n_boot, rng)])
    cell_y, cell_pred = cells.keys[Y].to_numpy(), cells.keys[PRED].to_numpy()
    reports, bounds = {}, {}
    assert counts.hist is not None
    for features in slices:
        codes, names = cells.group_codes(features)
        confusion = Confusion.by_group(draws, codes, len(names), cell_y, cell_pred)
        report = _slice(confusion, names, np.zeros(0, np.int64), np.zeros(0), None, rules)
        name = slice_name(features)
        bounds[name] = {}
        pick = [columns.index(f) for f in features]
        hist_groups = np.array(["*".join(g[i] for i in pick) for g in counts.groups])
        for group, entry in report.groups.items():
            hist = counts.hist[hist_groups == group].sum(axis=0)
            auc = binned_auc(hist[1], hist[0], rules.confidence)
            if auc is None:
                entry.rates["roc_auc"] = Estimate(None, reason="the group holds only one label")
            else:
                entry.rates["roc_auc"] = Estimate(auc.value, auc.ci)
                bounds[name][group] = auc.error_bound
        reports[name] = report
    return reports, bounds


def fairness_from_parquet(
    path: str | Path,
    spec: CountSpec,
    slices: Sequence[Sequence[str]],
    rules: GroupRules,
    rng: np.random.Generator,
    executor: Executor | None = None,
) -> tuple[dict[str, SliceReport], dict[str, dict[str, float]]]:
    """The fairness reports of a Parquet prediction set of any size: one streaming pass for the
    counts (pyarrow here, Ray Data when ``executor`` is a Ray one), the statistics on them.
    This is what a predictions adapter reading a folder of Parquet files calls."""
    features = sorted({f for s in slices for f in s})
    counts = count_predictions(path, replace(spec, features=tuple(features)), executor)
    return group_metrics_from_counts(counts, slices, rules, rng)


def with_binning_errors(by_group: dict[str, dict[str, dict]], bounds: dict[str, dict[str, float]]) -> None:
    """Put each group's AUC binning bound beside its AUC in a summary's ``by_group`` (in place)."""
    for name, groups in by_group.items():
        for group, entry in groups.items():
            if group in bounds.get(name, {}):
                entry["roc_auc_binning_error"] = bounds[name][group]
