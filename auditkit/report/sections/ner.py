"""HTML sections of token-classification audits: entity-type table with intervals, type confusion,
name-probe chart per group, per-group entity F1 and counterfactual swaps (privacy: ``ner_privacy``).
They format; they compute nothing."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from auditkit.ner.explain_audit import TokenExplainResult
from auditkit.ner.fairness import TokenFairnessResult
from auditkit.ner.performance import TokenPerformanceResult
from auditkit.report.format import interval, number
from auditkit.report.sections.base import Heatmap, Section, Table, figure_json, section_builder
from auditkit.results import AuditorResult, GateResult


def gate_cell(gates: dict[str, GateResult], gate_id: str) -> str:
    gate = gates.get(gate_id)
    return f"{gate.status} ({gate.op} {gate.threshold:g})" if gate else ""


@section_builder(TokenPerformanceResult)
def token_performance_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    m, ci = s["metrics"], s["ci"]
    labels = {
        "precision": "entity precision (micro)",
        "recall": "entity recall (micro)",
        "f1": "entity F1 (micro)",
        "macro_f1": "entity F1 (macro over types)",
        "token_accuracy": "token accuracy",
    }
    headline = Table(
        ["metric", "value", "95% CI", "note"],
        [[label, m.get(key), interval(ci.get(key)), m.get(f"{key}_reason", "")] for key, label in labels.items()]
        + [
            ["sentences", m["n_sentences"], "", ""],
            ["words", m["n_words"], "", ""],
            ["gold entities", m["n_gold_entities"], "", ""],
            ["predicted entities", m["n_pred_entities"], "", ""],
        ],
        caption="Strict IOB2 span matches (seqeval strict mode); intervals resample sentences",
    )
    by_type = Table(
        ["type", "support", "predicted", "correct", "precision", "95% CI", "recall", "95% CI", "F1", "95% CI"],
        [
            [
                kind,
                r["support"],
                r["n_pred"],
                r["tp"],
                number(r.get("precision")),
                interval(r["ci"].get("precision")),
                number(r.get("recall")),
                interval(r["ci"].get("recall")),
                number(r.get("f1")),
                interval(r["ci"].get("f1")),
            ]
            for kind, r in sorted(s["by_type"].items(), key=lambda kv: -kv[1]["support"])
        ],
        caption="Per entity type",
    )
    confusion = s["type_confusion"]
    columns = sorted({c for row in confusion.values() for c in row})
    confusion_table = Table(
        ["gold type", *columns],
        [[kind, *(row.get(c, 0) for c in columns)] for kind, row in sorted(confusion.items())],
        caption="What became of each gold entity: a type at the exact span, (boundary) = overlapping span, "
        "(missed) = nothing; row (spurious) counts predicted entities that overlap no gold entity",
    )
    kinds = [k for k, r in s["by_type"].items() if r.get("f1") is not None]
    fig = go.Figure(
        go.Bar(
            x=kinds,
            y=[s["by_type"][k]["f1"] for k in kinds],
            error_y=_whiskers([s["by_type"][k]["f1"] for k in kinds], [s["by_type"][k]["ci"].get("f1") for k in kinds]),
        )
    )
    fig.update_layout(title="Entity F1 per type (95% intervals)", yaxis_range=[0, 1])
    notes = []
    if m.get("n_truncated"):
        notes.append(
            f"{m['n_truncated']} sentences were longer than the model's maximum length; their last words "
            "were tagged O without a score."
        )
    if m.get("n_unscored_words"):
        notes.append(
            f"{m['n_unscored_words']} words had no word piece (cut by the maximum length, or text the tokenizer "
            f"drops, such as a lone no-break space or a control character) and were tagged O without a score; "
            f"{m.get('n_unscored_entity_words', 0)} of them are inside gold entities and count as missed."
        )
    return Section(
        key=name,
        title="Performance (entities)",
        tables=[headline, by_type, confusion_table],
        figures=[figure_json(fig)],
        notes=notes,
    )


def _status(group: dict) -> str:
    """ok, or insufficient with why (too few sentences, gold entities or names): why it was left out."""
    why = group.get("insufficient")
    return f"{group['status']}: {why}" if why else group["status"]


@section_builder(TokenFairnessResult)
def token_fairness_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    gate_of = {g.id: g for g in gates}
    tables, figures, notes = [], [], []
    for probe, report in s["name_probe"].items():
        groups = report["by_group"]
        names = list(groups)
        fig = go.Figure(
            go.Bar(
                x=names,
                y=[groups[g]["recall"] for g in names],
                error_y=_whiskers([groups[g]["recall"] for g in names], [groups[g]["ci"]["recall"] for g in names]),
                hovertext=[f"{groups[g]['n_names']} names, {groups[g]['status']}" for g in names],
            )
        )
        fig.update_layout(
            title=f"Name probe '{probe}': share of names tagged as one {report['person_type']} "
            "entity (95% intervals over names)",
            yaxis_range=[0, 1],
        )
        figures.append(figure_json(fig))
        d = report["disparity"]
        tables.append(
            Table(
                ["group", "names", "mentions", "recall", "95% CI", "status", "least recognised names"],
                [
                    [
                        g,
                        r["n_names"],
                        r["n_mentions"],
                        r["recall"],
                        interval(r["ci"]["recall"]),
                        _status(r),
                        ", ".join(f"{x['name']} ({x['recall']:.2f})" for x in r["lowest_names"]),
                    ]
                    for g, r in groups.items()
                ],
                caption=f"Name probe '{probe}' over {report['n_templates']} templates (every mention, with "
                "what the model tagged: name_probe.jsonl)",
            )
        )
        tables.append(
            Table(
                ["measure", "value", "95% CI", "gate", "note"],
                [
                    [
                        key,
                        d.get(key),
                        interval(d["ci"].get(key)),
                        gate_cell(gate_of, f"fairness.{key}[{probe}]"),
                        d.get(f"{key}_reason", ""),
                    ]
                    for key in ("name_recall_ratio", "name_recall_difference")
                ],
                caption=f"Name probe '{probe}': lowest / highest group recall, and their difference",
            )
        )
    for feature, groups in s["by_group"].items():
        d = s["disparities"][feature]
        tables.append(
            Table(
                ["group", "sentences", "gold entities", "entity F1", "95% CI", "status"],
                [
                    [
                        g,
                        r["n_sentences"],
                        r["n_gold_entities"],
                        r.get("entity_f1"),
                        interval(r["ci"]["entity_f1"]),
                        _status(r),
                    ]
                    for g, r in groups.items()
                ],
                caption=f"Entity F1 by {feature} (compared: {', '.join(d['groups_compared']) or 'none'}); "
                f"ratio {number(d.get('entity_f1_ratio'))} "
                f"{interval(d['ci'].get('entity_f1_ratio'))}, difference {number(d.get('entity_f1_difference'))} "
                f"{interval(d['ci'].get('entity_f1_difference'))}",
            )
        )
    if s["counterfactual"]:
        tables.append(
            Table(
                ["swap", "sentences edited", "share whose entities change", "95% CI", "gate", "note"],
                [
                    [
                        swap,
                        c["n"],
                        c.get("flip_rate"),
                        interval(c["ci"].get("flip_rate")),
                        gate_cell(gate_of, f"fairness.counterfactual_flip_rate[{swap}]"),
                        c.get("flip_rate_reason", ""),
                    ]
                    for swap, c in s["counterfactual"].items()
                ],
                caption="Counterfactual swaps: each test sentence edited word by word and tagged again",
            )
        )
        for swap, c in s["counterfactual"].items():
            for example in c.get("examples", [])[:3]:
                notes.append(
                    f"{swap}: '{' '.join(example['tokens'])}' entities {example['before']} -> {example['after']}"
                )
    return Section(
        key=name,
        title="Fairness (entities and names)",
        tables=tables,
        figures=figures,
        notes=notes,
        intro="The name probe (Mishra, He & Belli 2020) fills template sentences with first names of "
        "each group and counts how often the model tags the name, exactly, as a person.",
    )


def _whiskers(values: list[Any], cis: list[Any]) -> dict[str, Any]:
    pairs = list(zip(values, cis, strict=True))
    return {
        "type": "data",
        "symmetric": False,
        "array": [(c[1] - v) if c and v is not None else 0 for v, c in pairs],
        "arrayminus": [(v - c[0]) if c and v is not None else 0 for v, c in pairs],
    }


def _colour(score: float, scale: float) -> str:
    alpha = min(1.0, abs(score) / scale) * 0.85 if scale > 0 else 0.0
    return f"rgba(35, 140, 60, {alpha:.3f})" if score >= 0 else f"rgba(200, 40, 40, {alpha:.3f})"


def token_heatmap(record: dict[str, Any]) -> Heatmap:
    """The sentence's words coloured by attribution; the explained word is bracketed and labelled."""
    tokens = record["tokens"]
    scale = max((abs(t["score"]) for i, t in enumerate(tokens) if i != record["position"]), default=0.0)
    pieces: list[tuple[str, str | None, str]] = []
    for i, t in enumerate(tokens):
        if i:
            pieces.append((" ", None, ""))
        if i == record["position"]:
            pieces.append(
                (
                    f"[{t['token']}]",
                    "rgba(60, 90, 200, 0.35)",
                    f"explained word, tag {record['tag']}; its own attribution {t['score']:+.4g}",
                )
            )
        else:
            pieces.append((t["token"], _colour(t["score"], scale), f"{t['score']:+.4g}"))
    why = {"predicted": "tagged by the model", "missed": "missed entity", "outside": "outside entities"}
    label = (
        f"{record['id']} · word {record['position'] + 1} ({why.get(record.get('why', ''), 'explained')}; "
        f"gold {record.get('gold', '?')}, predicted {record.get('predicted', '?')}) · tag explained {record['tag']} · "
        f"F(x) − F(baseline) = {record['f_input'] - record['f_baseline']:+.4g} · {record['steps']} steps · "
        f"relative error {record['delta']:.2g}"
    )
    return Heatmap(label, pieces)


def _word_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r["token"], r["mean_attribution"], interval(r.get("ci")), r["count"]] for r in rows]


@section_builder(TokenExplainResult)
def token_explain_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    f, d, steps = s["faithfulness"], s["relative_delta"], s["steps"]
    explained = s["explained"]
    tables = [
        Table(
            ["explained words", "predicted entities", "missed entities", "outside", "mean steps", "max steps"],
            [
                [
                    s["n_examples"],
                    explained.get("predicted", 0),
                    explained.get("missed", 0),
                    explained.get("outside", 0),
                    steps["mean"],
                    steps["max"],
                ]
            ],
            caption=f"Integrated gradients of the {s['target']} tag at each explained word ({s['output']}, "
            f"baseline {s['baseline']}, {steps['quadrature'].replace('_', '-')} quadrature, adaptive steps)",
        ),
        Table(
            ["median relative error", "95th pct.", "share above tolerance"],
            [[d["median"], d["p95"], d["share_above_tolerance"]]],
            caption=f"Completeness: word attributions must add up to F(x) − F(baseline) within {s['tolerance']:g}",
        ),
    ]
    faith_rows = [["all types", f]] + [[kind, row] for kind, row in f["by_type"].items()]
    tables.append(
        Table(
            ["type", "words", "comprehensiveness AOPC (random)", "sufficiency AOPC (random)", "better than random"],
            [
                [
                    kind,
                    row["n"],
                    f"{number(row['comprehensiveness_aopc'])} ({number(row['random_comprehensiveness_aopc'])})",
                    f"{number(row['sufficiency_aopc'])} ({number(row['random_sufficiency_aopc'])})",
                    "yes" if row["better_than_random"] else "no",
                ]
                for kind, row in faith_rows
            ],
            caption="Faithfulness (ERASER) per explained word over its context words, top "
            + ", ".join(f"{p:g}%" for p in f["percents"])
            + " removed / kept; the explained word itself is never erased",
        )
    )
    protected_rows = [
        [
            feature,
            share,
            interval(s["protected_attribution_share_ci"].get(feature)),
            "; ".join(
                f"{g}: {number(v)}" for g, v in s["protected_attribution_share_by_group"].get(feature, {}).items()
            ),
        ]
        for feature, share in s["protected_attribution_share"].items()
    ]
    if protected_rows:
        tables.append(
            Table(
                ["sensitive feature", "share of |attribution|", "95% CI", "by group"],
                protected_rows,
                caption="Attribution on words that name a sensitive attribute (every word of the sentence)",
            )
        )
    for kind, sides in s["context_words_by_type"].items():
        what = "the O tag" if kind == "O" else f"'{kind}' tags"
        for side, verb in (("toward", "push toward"), ("away", "push away from")):
            if sides[side]:
                tables.append(
                    Table(
                        ["context word", "mean attribution", "95% CI", "count"],
                        _word_rows(sides[side]),
                        caption=f"Context words that {verb} {what}",
                    )
                )
    notes = []
    for reason, count in s["left_out"].items():
        notes.append(f"{count} candidate words were not explained: {reason.replace('_', ' ')}.")
    for feature, terms in s["protected_words_missing"].items():
        notes.append(
            f"protected_words for {feature}: {', '.join(repr(t) for t in terms)} matched no word of the "
            f"{s['n_examples']} explained sentences, so the share says nothing about them."
        )
    if not f["better_than_random"]:
        notes.append("The attributions are no better than random ones on comprehensiveness or sufficiency.")
    if d["share_above_tolerance"] > 0:
        notes.append(
            f"{d['share_above_tolerance']:.0%} of explained words stayed above the completeness tolerance "
            f"after {steps['max']} steps."
        )
    return Section(
        key=name,
        title="Explanations (entities)",
        tables=tables,
        notes=notes,
        heatmaps=[token_heatmap(r) for r in s["examples"]],
        intro="Each explained word is a word the model tags as an entity, or a gold entity it missed; "
        "hover a word for its attribution toward the tag explained.",
    )
