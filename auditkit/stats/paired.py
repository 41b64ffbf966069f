"""Paired comparisons of two prediction sets on the same rows: one bootstrap feeds both."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from auditkit.stats.cells import CellTable, Confusion, Y
from auditkit.stats.groups import DISPARITIES, Estimate, GroupRules, confusion_disparity, slice_name
from auditkit.stats.intervals import percentile_interval
from auditkit.stats.rates import rate

A, B = "y_pred_a", "y_pred_b"


def paired_changes(
    sensitive: pd.DataFrame,
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    slices: Sequence[Sequence[str]],
    rules: GroupRules,
    rng: np.random.Generator,
) -> dict[str, dict[str, Estimate]]:
    """Per slice: each disparity's change from A to B, and the gap between the groups' accuracy drops."""
    columns = sorted({f for s in slices for f in s})
    frame = sensitive[columns].astype(str).reset_index(drop=True).assign(**{Y: y, A: pred_a, B: pred_b})
    cells = CellTable.from_frame(frame, [*columns, Y, A, B])
    counts = np.vstack([cells.observed(), cells.replicates(rules.n_boot, rng)])
    cell_y = cells.keys[Y].to_numpy()
    out: dict[str, dict[str, Estimate]] = {}
    for features in slices:
        codes, names = cells.group_codes(features)
        ca = Confusion.by_group(counts, codes, len(names), cell_y, cells.keys[A].to_numpy())
        cb = Confusion.by_group(counts, codes, len(names), cell_y, cells.keys[B].to_numpy())
        sizes = ca.n[0]
        changes: dict[str, Estimate] = {}
        for metric, (needed, _) in DISPARITIES.items():
            eligible = [
                g
                for g in range(len(names))
                if sizes[g] >= rules.min_group_size and all(_enough(ca, r, g, rules) for r in needed)
            ]
            if len(eligible) < 2:
                changes[f"{metric}_change"] = Estimate(None, reason="fewer than 2 groups meet the minimum-size rules")
                continue
            values = [confusion_disparity(c, metric, eligible, rules.method) for c in (ca, cb)]
            changes[f"{metric}_change"] = series_estimate(values[1] - values[0], rules.confidence)
        eligible = [g for g in range(len(names)) if sizes[g] >= rules.min_group_size]
        if len(eligible) >= 2:
            drop = rate(ca, "accuracy")[:, eligible] - rate(cb, "accuracy")[:, eligible]
            changes["accuracy_drop_gap"] = series_estimate(drop.max(axis=1) - drop.min(axis=1), rules.confidence)
        else:
            changes["accuracy_drop_gap"] = Estimate(None, reason="fewer than 2 groups of min_group_size rows")
        out[slice_name(features)] = changes
    return out


def _enough(confusion: Confusion, name: str, g: int, rules: GroupRules) -> bool:
    needs = {
        "tpr": confusion.positives,
        "fnr": confusion.positives,
        "fpr": confusion.negatives,
        "precision": confusion.predicted_positives,
    }
    return name not in needs or needs[name][0, g] >= rules.min_class_size


def series_estimate(series: np.ndarray, confidence: float) -> Estimate:
    """The observed value (row 0) of a bootstrap series with the percentile interval of its replicates."""
    if np.isnan(series[0]):
        return Estimate(None, reason="undefined on the observed rows")
    interval, reason = percentile_interval(series[1:], confidence)
    return Estimate(float(series[0]), interval, reason)
