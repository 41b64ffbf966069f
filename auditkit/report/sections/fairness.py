"""HTML section of the fairness auditor: group bars with interval whiskers, disparities, notes.

Small groups left out of comparisons are listed in one folded table (a multiclass audit has one per
slice, class and group: dozens); only gates whose comparison left groups out get a note of their own."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from auditkit.auditors.fairness import FairnessResult
from auditkit.report.format import interval, number
from auditkit.report.sections.base import Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult
from auditkit.stats.groups import DISPARITIES

BAR_RATES = {"selection_rate": "selection rate", "tpr": "true positive rate", "fpr": "false positive rate"}


def _bars(slice_name: str, groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fig = go.Figure()
    names = list(groups)
    for key, label in BAR_RATES.items():
        values = [groups[g].get(key) for g in names]
        cis = [groups[g]["ci"].get(key) for g in names]
        fig.add_trace(
            go.Bar(
                name=label,
                x=names,
                y=values,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [(c[1] - v) if c and v is not None else 0 for c, v in zip(cis, values, strict=True)],
                    "arrayminus": [(v - c[0]) if c and v is not None else 0 for c, v in zip(cis, values, strict=True)],
                },
                hovertext=[f"n={groups[g]['n']}, {groups[g]['status']}" for g in names],
            )
        )
    fig.update_layout(title=f"Rates by {slice_name} (95% intervals)", barmode="group", yaxis_range=[0, 1])
    return figure_json(fig)


@section_builder(FairnessResult)
def fairness_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    gate_of = {g.id: g for g in gates}
    figures = [_bars(slice_name, groups) for slice_name, groups in s["by_group"].items()]
    rows = []
    for slice_name, values in s["disparities"].items():
        for metric in DISPARITIES:
            gate = gate_of.get(f"fairness.{metric}[{slice_name}]")
            verdict = f"{gate.status} ({gate.op} {gate.threshold:g})" if gate else ""
            note = values.get(f"{metric}_reason", "")
            rows.append(
                [
                    slice_name,
                    metric,
                    values.get(metric),
                    interval(values["ci"].get(metric)),
                    ", ".join(values["groups_compared"][metric]),
                    verdict,
                    gate.source if gate else "",
                    note,
                ]
            )
    disparity_table = Table(
        ["slice", "disparity", "value", "95% CI", "groups compared", "gate", "rule source", "note"],
        rows,
        caption=f"Disparities ({s['method'].replace('_', ' ')}; {s['n_boot']} bootstrap resamples)",
    )
    group_rows = []
    notes = [
        f"Gate {g.id} ({g.status}) compared only some groups: {g.reason or 'left out: ' + ', '.join(g.left_out)}"
        for g in gates
        if g.left_out
    ]
    for slice_name, groups in s["by_group"].items():
        for group, g in groups.items():
            group_rows.append(
                [
                    slice_name,
                    group,
                    g["n"],
                    g.get("base_rate"),
                    g.get("selection_rate"),
                    g.get("tpr"),
                    g.get("fpr"),
                    g.get("precision"),
                    g.get("accuracy"),
                    g.get("roc_auc"),
                    g["status"],
                ]
            )
    group_table = Table(
        [
            "slice",
            "group",
            "n",
            "base rate",
            "selection rate",
            "TPR",
            "FPR",
            "precision",
            "accuracy",
            "ROC AUC",
            "status",
        ],
        group_rows,
        caption="Per-group rates (intervals in summary.json and the charts)",
    )
    errors = [
        g["roc_auc_binning_error"]
        for groups in s["by_group"].values()
        for g in groups.values()
        if "roc_auc_binning_error" in g
    ]
    if errors:  # a streamed audit
        notes.append(
            f"Per-group ROC AUC comes from binned scores (a streamed audit); each exact AUC lies within its "
            f"roc_auc_binning_error in summary.json of the value shown (at most {max(errors):.2g} here)."
        )
    tables = [disparity_table, group_table]
    left_out = _left_out_table(s)
    if left_out is not None:
        tables.insert(0, left_out)
    if s.get("accuracy_by_group"):
        tables.append(_accuracy_table(s))
    if s["counterfactual"]:
        swap_rows = [
            [
                swap,
                c["n"],
                c["flip_rate"],
                interval(c["ci"].get("flip_rate")),
                c["mean_abs_score_change"],
                interval(c["ci"].get("mean_abs_score_change")),
                number(c["mean_score_change"]),
                c.get("reason") or c.get("flip_rate_reason") or "",
            ]
            for swap, c in s["counterfactual"].items()
        ]
        tables.append(
            Table(
                [
                    "swap",
                    "texts changed",
                    "flip rate",
                    "95% CI",
                    "mean |score change|",
                    "95% CI",
                    "mean score change",
                    "note",
                ],
                swap_rows,
                caption="Counterfactual swaps: each test text edited and scored again",
            )
        )
    return Section(
        key=name,
        title="Fairness",
        tables=tables,
        figures=figures,
        notes=notes,
        intro=f"Groups smaller than {s['min_group_size']} rows, or with fewer than {s['min_class_size']} "
        "positives, negatives or predicted positives for a rate, are reported but not compared.",
    )


def _left_out_table(s: dict[str, Any]) -> Table | None:
    """Every group a comparison left out, and why, as rows of one folded table (None when none was)."""
    multiclass = bool(s.get("classes"))
    rows, slices = [], 0
    for by_group, accuracy in ((s["by_group"], False), (s.get("accuracy_by_group", {}), True)):
        for slice_key, groups in by_group.items():
            slices += 1
            feature, _, cls = slice_key.partition("|class=")
            for group, g in groups.items():
                rates_by_why: dict[str, list[str]] = {}
                for rate, why in g.get("insufficient", {}).items():
                    rates_by_why.setdefault(why, []).append(rate)
                for why, rates in rates_by_why.items():
                    if accuracy:
                        scope, cls = "accuracy difference", "all classes"
                    elif "all" in rates:
                        scope = "every disparity"
                    else:
                        scope = ", ".join(f"{r}-based" for r in rates) + " disparities"
                    rows.append([feature, cls, group, g["n"], scope, why])
    if not rows:
        return None
    n_groups = len({tuple(row[:3]) for row in rows})
    n_slices = len({tuple(row[:2]) for row in rows})
    if not multiclass:
        rows = [row[:1] + row[2:] for row in rows]
    columns = (
        ["slice", "class", "group", "rows", "left out of", "why"]
        if multiclass
        else ["slice", "group", "rows", "left out of", "why"]
    )
    return Table(
        columns,
        rows,
        caption="Too few rows (min_group_size), or too few positives, negatives or predicted positives for a "
        "rate (min_class_size): reported in the tables below, left out of the comparisons named",
        collapsed=f"{n_groups} small groups left out of the comparisons in {n_slices} of {slices} slices: "
        "show which, and why",
    )


def _accuracy_table(s: dict[str, Any]) -> Table:
    """Multiclass: each group's accuracy over all classes, and the accuracy difference per slice."""
    rows = []
    for slice_name, groups in s["accuracy_by_group"].items():
        d = s["accuracy_disparities"][slice_name]
        for group, g in groups.items():
            rows.append([slice_name, group, g["n"], g.get("accuracy"), interval(g["ci"].get("accuracy")), g["status"]])
        rows.append(
            [
                slice_name,
                "accuracy difference",
                "",
                d.get("accuracy_difference"),
                interval(d["ci"].get("accuracy_difference")),
                d.get("accuracy_difference_reason", ""),
            ]
        )
    return Table(
        ["slice", "group", "n", "accuracy", "95% CI", "status / note"],
        rows,
        caption="Per-group accuracy over all classes (the class-qualified slices above are one-vs-rest)",
    )
