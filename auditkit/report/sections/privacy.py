"""HTML section of the privacy auditor: privacy/utility curve, runs with accounting, attack ROC."""

from __future__ import annotations

import plotly.graph_objects as go

from auditkit.auditors.privacy import PrivacyResult
from auditkit.report.format import interval, number
from auditkit.report.sections.base import Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult

KINDS = {
    "probe": "probe, the cheap option: ",
    "top_layers": "top encoder layers: ",
    "lora": "LoRA fine-tuning of the encoder: ",
}


@section_builder(PrivacyResult)
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
    attacks = [("audited model", s["audited_model"].get("mia"))]
    for label, r in [("non-private run", reference), *[(r["tag"], r) for r in runs]]:
        attacks += [(label, r["mia"]), (f"{label}, LiRA", r.get("lira"))]
    for label, attack in attacks:
        if not attack:
            continue
        roc.add_trace(
            go.Scatter(
                x=attack["roc"]["fpr"], y=attack["roc"]["tpr"], mode="lines", name=f"{label} (AUC {attack['auc']:.3f})"
            )
        )
    roc.add_trace(go.Scatter(x=[1e-3, 1], y=[1e-3, 1], mode="lines", line={"dash": "dot"}, name="chance"))
    roc.update_layout(
        title="Membership inference ROC (loss threshold and LiRA)",
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
    )
    audited_m = s["audited_metrics"]
    rows = [
        [
            "audited model (as built)",
            *[None] * 10,
            audited_m["accuracy"],
            audited_m.get("balanced_accuracy"),
            audited_m.get("roc_auc"),
            "",
            "",
            "",
            s.get("audited_degenerate") or "",
        ]
    ]
    for label, r in [("non-private reference", reference), *[(x["tag"], x) for x in runs]]:
        rows.append(
            [
                label,
                r["epsilon"],
                r["epsilons"].get("rdp"),
                r["epsilons"].get("prv"),
                r["delta"],
                r["noise_multiplier"],
                r["max_grad_norm"],
                r["clipped_share"],
                r["steps"],
                r["learning_rate"],
                r["threshold"],
                r["metrics"]["accuracy"],
                r["metrics"].get("balanced_accuracy"),
                r["metrics"].get("roc_auc"),
                _attack(r["mia"]),
                _attack(r.get("lira")),
                r["seconds"],
                r["degenerate"] or "",
            ]
        )
    audited = s["audited_model"].get("mia")
    kind = KINDS.get(s.get("run_kind"), "")
    runs_table = Table(
        [
            "run",
            "epsilon",
            "epsilon (RDP)",
            "epsilon (PRV)",
            "delta",
            "noise multiplier",
            "clip norm",
            "share clipped",
            "steps",
            "learning rate",
            "threshold",
            "accuracy",
            "balanced accuracy",
            "ROC AUC",
            "loss attack: AUC / TPR@0.1% / eps lower bound",
            "LiRA: AUC / TPR@0.1% [95% CI] / eps lower bound",
            "seconds",
            "degenerate",
        ],
        rows,
        caption=(
            f"Runs ({kind}{s['trained']}); learning rate, epochs and threshold chosen on a validation carve-out of "
            f"{s['n_validation']} training rows, runs trained on the other {s['n_fit']}"
        ),
    )
    cost_rows = []
    for r in runs:
        for feature, cost in r["fairness_cost"].items():
            cost_rows.append(
                [
                    r["tag"],
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
            "run",
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
    notes = [f"{r['tag'] or 'non-private reference'}: {flag}" for r in [reference, *runs] for flag in r["flags"]]
    return Section(
        key=name,
        title="Privacy",
        tables=[runs_table, cost_table],
        figures=[figure_json(curve), figure_json(roc)],
        notes=notes,
        intro=_intro(audited, s.get("audited_degenerate")),
    )


def _attack(attack: dict | None) -> str:
    if not attack:
        return "not run"
    ci = attack.get("tpr_at_fpr_ci", {}).get("0.001")
    return (
        f"{number(attack['auc'])} / {number(attack['tpr_at_fpr']['0.001'])}"
        + (f" {interval(ci)}" if ci else "")
        + f" / {number(attack['epsilon_lower_bound'])}"
    )


def _intro(audited: dict | None, degenerate: str | None) -> str:
    if audited is None:
        return f"Audited model: degenerate ({degenerate}); no membership-inference conclusion is drawn from it."
    return (
        f"Audited model: membership-inference AUC {audited['auc']:.3f}, TPR at 1% FPR "
        f"{audited['tpr_at_fpr']['0.01']:.3f}, empirical epsilon lower bound "
        f"{audited['epsilon_lower_bound']:.3g} (the most these {audited['n_members']} + "
        f"{audited['n_nonmembers']} rows could show: {audited['epsilon_lower_bound_ceiling']:.3g}). "
        "Runs train what the adapter's retrain capability gives them (see the table caption); "
        "a run marked degenerate learned nothing, so nothing derived from it is a finding."
    )
