"""HTML section of the mitigation auditor: each method against the unmitigated model, and the trade-off chart."""

from __future__ import annotations

import plotly.graph_objects as go

from auditkit.auditors.mitigation import UNMITIGATED, MitigationResult
from auditkit.report.format import interval, number
from auditkit.report.sections.base import Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult

SHOWN = ("demographic_parity_ratio", "demographic_parity_difference", "equalized_odds_difference")


@section_builder(MitigationResult)
def mitigation_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    assert isinstance(result, MitigationResult)
    feature = result.sensitive_feature
    rows = []
    for method_name, m in result.methods.items():
        row = [
            method_name,
            m.method if method_name != UNMITIGATED else "unmitigated model",
            m.constraint or "",
            number(m.strength) if m.strength is not None else "",
            "yes" if m.uses_sensitive_feature else "no",
            f"{number(m.accuracy)} {interval(m.accuracy_ci)}",
            f"{number(m.accuracy_cost)} {interval(m.accuracy_cost_ci)}" if method_name != UNMITIGATED else "",
        ]
        for metric in SHOWN:
            value = m.disparities.get(metric)
            row.append(f"{number(value)} {interval(m.disparities.get('ci', {}).get(metric))}")
        rows.append(row)
    table = Table(
        ["name", "method", "constraint", "strength", "uses the sensitive feature to decide", "accuracy [95% CI]",
         "accuracy cost [95% CI]", *(f"{m.replace('_', ' ')} [95% CI]" for m in SHOWN)],
        rows,
        caption=f"Each method judged on {result.n_eval} held-out rows, by {feature}, beside the unmitigated model",
    )  # fmt: skip
    fig = go.Figure()
    none = result.methods[UNMITIGATED]
    for method_name, m in result.methods.items():
        if method_name == UNMITIGATED or not m.pareto:
            continue
        points = [p for p in m.pareto if p["value"] is not None and p["accuracy"] is not None]
        fig.add_trace(
            go.Scatter(
                x=[p["value"] for p in points],
                y=[p["accuracy"] for p in points],
                mode="lines+markers",
                name=method_name,
                hovertext=[f"strength {p['strength']}; {p['disparity']}" for p in points],
            )
        )
    base = none.disparities.get("demographic_parity_difference")
    if base is not None and none.accuracy is not None:
        fig.add_trace(go.Scatter(x=[base], y=[none.accuracy], mode="markers", name="unmitigated",
                                 marker={"symbol": "x", "size": 12}))  # fmt: skip
    fig.update_layout(
        title=f"Trade-off by {feature}: accuracy against the disparity each constraint equalises",
        xaxis_title="disparity (difference between groups; lower is fairer)",
        yaxis_title="accuracy",
    )
    deciding = [n for n, m in result.methods.items() if n != UNMITIGATED and m.uses_sensitive_feature]
    notes = [f"Fitted on {result.fitted_on}; judged on {result.n_eval} rows. Seed {result.seed}."]
    if deciding:
        notes.append(
            f"{', '.join(deciding)} use {feature} when deciding (a group-specific threshold treats groups "
            "differently): the law of many places restricts this in lending, hiring and housing. Check before "
            "deploying."
        )
    notes += [f"{g.id}: {g.reason}" for g in gates if g.reason and g.status == "inconclusive"]
    return Section(
        key=name,
        title="Bias mitigation",
        intro="What each mitigation method does to the disparity and what it costs in accuracy, with the "
        "fitted fix exported to mitigation.json.",
        tables=[table],
        figures=[figure_json(fig)],
        notes=notes,
    )
