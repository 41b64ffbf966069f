"""HTML section of the privacy auditor: privacy/utility curve, runs with accounting, attack ROC."""

from __future__ import annotations

import plotly.graph_objects as go

from auditkit.report.format import interval, number
from auditkit.report.sections.base import Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult


@section_builder("privacy")
def privacy_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    runs = sorted(s["runs"], key=lambda r: r["epsilon"] or 0)
    reference = s["non_private"]
    eps = [r["epsilon"] for r in runs]
    curve = go.Figure(
        go.Scatter(
            x=eps, y=[r["metrics"]["accuracy"] for r in runs], mode="lines+markers", name="overall", line={"width": 3}
        )
    )
    for feature, groups in reference["by_group"].items():
        for group in groups:
            curve.add_trace(
                go.Scatter(
                    x=eps,
                    y=[r["by_group"][feature][group]["accuracy"] for r in runs],
                    mode="lines+markers",
                    name=f"{feature} = {group}",
                    line={"dash": "dot"},
                )
            )
    curve.add_hline(y=reference["metrics"]["accuracy"], line_dash="dash", annotation_text="non-private")
    curve.update_layout(
        title="Privacy / utility: accuracy against epsilon",
        xaxis_title="epsilon (accounted)",
        yaxis_title="accuracy",
        xaxis_type="log",
    )
    roc = go.Figure()
    for label, attack in [
        ("audited model", s["audited_model"]["mia"]),
        ("non-private run", reference["mia"]),
        *[(f"epsilon {r['target_epsilon']:g}", r["mia"]) for r in runs],
    ]:
        roc.add_trace(
            go.Scatter(
                x=attack["roc"]["fpr"], y=attack["roc"]["tpr"], mode="lines", name=f"{label} (AUC {attack['auc']:.3f})"
            )
        )
    roc.add_trace(go.Scatter(x=[1e-3, 1], y=[1e-3, 1], mode="lines", line={"dash": "dot"}, name="chance"))
    roc.update_layout(
        title="Membership inference ROC (loss threshold)",
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
    )
    rows = []
    for label, r in [("non-private", reference), *[(f"target {x['target_epsilon']:g}", x) for x in runs]]:
        rows.append(
            [
                label,
                r["epsilon"],
                r["delta"],
                r["noise_multiplier"],
                r["sample_rate"],
                r["steps"],
                r["max_grad_norm"],
                r["accountant"] or "",
                r["metrics"]["accuracy"],
                r["metrics"].get("roc_auc"),
                r["mia"]["auc"],
                f"{number(r['mia']['epsilon_lower_bound'])} (ceiling "
                f"{number(r['mia']['epsilon_lower_bound_ceiling'])})",
                r["seconds"],
            ]
        )
    audited = s["audited_model"]["mia"]
    runs_table = Table(
        [
            "run",
            "epsilon",
            "delta",
            "noise",
            "sample rate",
            "steps",
            "clip norm",
            "accountant",
            "accuracy",
            "ROC AUC",
            "attack AUC",
            "epsilon lower bound",
            "seconds",
        ],
        rows,
        caption=f"Runs ({s['trained']})",
    )
    cost_rows = []
    for r in runs:
        for feature, cost in r["fairness_cost"].items():
            cost_rows.append(
                [
                    f"{r['target_epsilon']:g}",
                    feature,
                    cost.get("demographic_parity_ratio_change"),
                    interval(cost["ci"].get("demographic_parity_ratio_change")),
                    cost.get("equalized_odds_difference_change"),
                    interval(cost["ci"].get("equalized_odds_difference_change")),
                    cost.get("accuracy_drop_gap"),
                    interval(cost["ci"].get("accuracy_drop_gap")),
                ]
            )
    cost_table = Table(
        [
            "target epsilon",
            "slice",
            "Δ demographic parity ratio",
            "95% CI",
            "Δ equalized odds diff.",
            "95% CI",
            "worst minus best group accuracy drop",
            "95% CI",
        ],
        cost_rows,
        caption="Fairness cost of privacy, against the non-private run (paired bootstrap)",
    )
    notes = [flag for r in runs for flag in r["flags"]]
    return Section(
        key=name,
        title="Privacy",
        tables=[runs_table, cost_table],
        figures=[figure_json(curve), figure_json(roc)],
        notes=notes,
        intro=(
            f"Audited model: membership-inference AUC {audited['auc']:.3f}, TPR at 1% FPR "
            f"{audited['tpr_at_fpr']['0.01']:.3f}, empirical epsilon lower bound "
            f"{audited['epsilon_lower_bound']:.3g} (the most these {audited['n_members']} + "
            f"{audited['n_nonmembers']} rows could show: {audited['epsilon_lower_bound_ceiling']:.3g})."
        ),
    )
