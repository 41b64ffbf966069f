"""HTML section of the explain auditor: completeness, faithfulness, top words, protected share, heat-maps."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from auditkit.auditors.explain import ExplainResult
from auditkit.report.format import interval, number
from auditkit.report.sections.base import Heatmap, Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult


def _colour(score: float, scale: float) -> str:
    """Green for attribution toward the explained output, red against; stronger = more opaque."""
    alpha = min(1.0, abs(score) / scale) * 0.85 if scale > 0 else 0.0
    return f"rgba(35, 140, 60, {alpha:.3f})" if score >= 0 else f"rgba(200, 40, 40, {alpha:.3f})"


def heatmap(record: dict[str, Any]) -> Heatmap:
    tokens = record["tokens"]
    scale = max((abs(t["score"]) for t in tokens), default=0.0)
    pieces: list[tuple[str, str | None, str]] = []
    text = record.get("text")
    cursor = 0
    for t in tokens:
        if text is not None and "start" in t:
            if t["start"] > cursor:
                pieces.append((text[cursor : t["start"]], None, ""))
            cursor = t["end"]
        elif pieces:
            pieces.append((" ", None, ""))
        pieces.append((t["token"], _colour(t["score"], scale), f"{t['score']:+.4g}"))
    if text is not None and cursor < len(text):
        pieces.append((text[cursor:], None, "not attributed (beyond the model's maximum length)"))
    label = (
        f"{record['id']} · explains output {record['target']} · F(x) − F(baseline) = "
        f"{record['f_input'] - record['f_baseline']:+.4g} · {record['steps']} steps · "
        f"relative error {record['delta']:.2g}"
    )
    return Heatmap(label, pieces)


@section_builder(ExplainResult)
def explain_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    d, steps, f = s["relative_delta"], s["steps"], s["faithfulness"]
    method = s.get("method", "integrated_gradients").replace("_", " ")
    unit = steps.get("unit", "steps")
    how = (
        f"{steps['quadrature'].replace('_', '-')} quadrature, adaptive steps"
        if "quadrature" in steps
        else f"{method}, exact for every sampled permutation"
    )
    completeness = Table(
        ["examples", f"mean {unit}", f"max {unit}", "median relative error", "95th pct.", "share above tolerance"],
        [[s["n_examples"], steps["mean"], steps["max"], d["median"], d["p95"], d["share_above_tolerance"]]],
        caption=f"Completeness: attributions must add up to F(x) − F(baseline) within {s['tolerance']:g} ({how})"
        + (f"; baseline: {s['baseline']}" if s.get("baseline") else ""),
    )
    convergence = s.get("relative_standard_error")  # sampling engines only
    faith = Table(
        ["", "comprehensiveness AOPC (higher is better)", "sufficiency AOPC (lower is better)"],
        [
            [method, f["comprehensiveness_aopc"], f["sufficiency_aopc"]],
            ["random attributions", f["random_comprehensiveness_aopc"], f["random_sufficiency_aopc"]],
        ],
        caption="Faithfulness (ERASER), top "
        + ", ".join(f"{p:g}%" for p in f["percents"])
        + " of words removed / kept",
    )
    protected_rows = []
    for feature, share in s["protected_attribution_share"].items():
        groups = "; ".join(f"{g}: {number(v)}" for g, v in s["protected_attribution_share_by_group"][feature].items())
        protected_rows.append([feature, share, interval(s["protected_attribution_share_ci"].get(feature)), groups])
    tables = [completeness, faith]
    if convergence:
        tables.insert(
            1,
            Table(
                ["median relative standard error", "95th pct.", "share above tolerance"],
                [[convergence["median"], convergence["p95"], convergence["share_above_tolerance"]]],
                caption=f"Convergence of the sampled estimates: relative standard error = {convergence['measure']}; "
                f"examples get more permutations until it is within {s['tolerance']:g}",
            ),
        )
    if protected_rows:
        tables.append(
            Table(
                ["sensitive feature", "share of |attribution|", "95% CI", "by group"],
                protected_rows,
                caption="Attribution on words that name a sensitive attribute",
            )
        )
    top = s["top_tokens"] + s["top_negative_tokens"]
    figures = []
    if top:
        top = sorted(top, key=lambda r: r["mean_attribution"])
        bar = go.Figure(
            go.Bar(
                x=[r["mean_attribution"] for r in top],
                y=[r["token"] for r in top],
                orientation="h",
                marker_color=["#238c3c" if r["mean_attribution"] > 0 else "#c82828" for r in top],
                hovertext=[f"count {r['count']}" for r in top],
            )
        )
        bar.update_layout(
            title="Words toward (right) and against (left) the favourable label",
            xaxis_title="mean attribution",
            height=max(340, 18 * len(top)),
        )
        figures.append(figure_json(bar))
    notes = []
    for feature, terms in s.get("protected_words_missing", {}).items():
        notes.append(
            f"protected_words for {feature}: {', '.join(repr(t) for t in terms)} matched no attributed "
            f"{s.get('units', 'words')[:-1]} in the {s['n_examples']} explained examples, so the share says "
            "nothing about them (check the spelling, or whether they occur in the data)."
        )
    if not f["better_than_random"]:
        notes.append(
            "The attributions are no better than random ones on comprehensiveness or sufficiency: do not rely on them."
        )
    if convergence and convergence["share_above_tolerance"] > 0:
        notes.append(
            f"{convergence['share_above_tolerance']:.0%} of examples' Shapley estimates kept a relative standard "
            f"error above the tolerance after {steps['max']} permutations."
        )
    if d["share_above_tolerance"] > 0:
        notes.append(
            f"{d['share_above_tolerance']:.0%} of examples stayed above the completeness tolerance "
            f"after {steps['max']} {unit}."
        )
    return Section(
        key=name,
        title="Explanations",
        tables=tables,
        figures=figures,
        notes=notes,
        heatmaps=[heatmap(r) for r in result.attribution_records()],
        intro=f"Integrated gradients ({s['output']} of the {s['target']} class) over the {s.get('units', 'words')} of "
        f"{s['n_examples']} examples; hover a word for its score.",
    )
