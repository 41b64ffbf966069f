"""``summary.md``: a short verdict and gate table for a CI step summary or a PR comment."""

from __future__ import annotations

import re
from pathlib import Path

from auditkit.report.format import describe_baseline, headline, interval, number, visible_controls
from auditkit.results import AuditResult

ICONS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def cell(text: object) -> str:
    """Make untrusted text inert inside Markdown, table cells included: no HTML, no links, no code
    spans, no emphasis, no column breaks. User text is never put in a code span (a backtick in it
    would end the span), and every character Markdown gives meaning to is escaped."""
    value = visible_controls(" ".join(str(text).splitlines()))
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+\-!|~:$])", r"\\\1", value)


def to_markdown(result: AuditResult) -> str:
    icon = "✅" if result.verdict == "pass" else "❌"
    lines = [f"## auditkit · {cell(result.audit)} · {icon} {headline(result)}", ""]
    with_baseline = any(g.baseline is not None for g in result.gates)
    if result.gates:
        header = "| gate | value | 95% CI | rule | status | source |" + (
            " compared with baseline |" if with_baseline else ""
        )
        lines += [header, "|---|---:|---|---|---|---|" + ("---|" if with_baseline else "")]
        for g in result.gates:
            status = ICONS[g.status] + (" (blocks)" if g.blocks and g.status == "inconclusive" else "")
            compared = f" {cell(describe_baseline(g))} |" if with_baseline else ""
            lines.append(
                f"| {cell(g.id)} | {number(g.value)} | {interval(g.ci)} | {g.op} {g.threshold:g} | {status} | "
                f"{cell(g.source)}{' — ' + cell(g.reason) if g.reason else ''} |{compared}"
            )
        lines.append("")
    performance = result.auditors.get("performance")
    if performance is not None:
        m = performance.summary()["metrics"]
        if "n_sentences" in m:  # token classification
            lines.append(
                f"Entities in {m['n_sentences']} held-out sentences: F1 {number(m['f1'])} (micro), "
                f"{number(m['macro_f1'])} (macro); token accuracy {number(m['token_accuracy'])}."
            )
        else:
            lines.append(
                f"Performance on {m['n']} held-out rows: accuracy {number(m['accuracy'])}, "
                f"balanced accuracy {number(m['balanced_accuracy'])}, ROC AUC {number(m['roc_auc'])}."
            )
        lines.append("")
    fairness = result.auditors.get("fairness")
    if fairness is not None:
        worst = fairness.summary().get("worst_slices", {})
        if worst:
            lines += ["**Worst slices**", "", "| disparity | slice | value | 95% CI |", "|---|---|---:|---|"]
            for metric, w in worst.items():
                lines.append(f"| {cell(metric)} | {cell(w['slice'])} | {number(w['value'])} | {interval(w['ci'])} |")
            lines.append("")
    for note in result.notes:
        lines.append(f"- {cell(note)}")
    p = result.provenance
    lines += [
        "",
        f"<sub>model `{p.model_sha256[:12]}` · data `{p.data_sha256[:12]}` · seed {result.seed} · "
        f"auditkit {p.auditkit_version} · {p.duration_s:.1f} s</sub>",
        "",
    ]
    return "\n".join(lines)


def write(result: AuditResult, path: Path) -> None:
    path.write_text(to_markdown(result), encoding="utf-8")
