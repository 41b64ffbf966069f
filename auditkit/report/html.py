"""``report.html``: one self-contained, offline file with plotly.js embedded once.

Every string from data or config goes through Jinja's autoescaping; figure JSON is
embedded with ``<``, ``>`` and ``&`` escaped, so no dataset text can open a tag.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from auditkit.report.format import describe_baseline, describe_gate, headline, interval, number
from auditkit.report.sections import build_section
from auditkit.results import AuditResult

GLOSSARY = {
    "accuracy": "Share of held-out rows the model classifies correctly.",
    "balanced accuracy": "Mean of the true-positive rate and the true-negative rate; not fooled by class imbalance.",
    "ROC AUC": "Probability that a random positive row scores higher than a random negative row (0.5 = chance).",
    "expected calibration error": "Average gap between the predicted probability and the observed positive rate, "
    "weighted by how many rows fall in each score bin.",
    "selection rate": "Share of a group that receives the favourable prediction.",
    "true / false positive rate (TPR, FPR)": "Among the group's truly favourable rows, the share predicted "
    "favourable (TPR); among its truly unfavourable rows, the share wrongly predicted favourable (FPR).",
    "demographic parity difference / ratio": "Largest gap between the groups' selection rates, or the smallest "
    "selection rate divided by the largest. The four-fifths rule asks the ratio to be at least 0.8.",
    "equalized odds difference / ratio": "The worse of the TPR and FPR gaps (or ratios) between groups.",
    "equal opportunity difference": "Largest gap between the groups' true-positive rates.",
    "insufficient group": "A group too small (min_group_size) or with too few positives, negatives or predicted "
    "positives (min_class_size) for a rate: reported, but left out of the comparisons.",
    "counterfactual flip rate": "Share of texts whose decision changes when words naming a group are swapped "
    "(male for female, say) and nothing else.",
    "integrated gradients": "",  # filled in by glossary() for what the explain auditor ran on
    "shapley value sampling": "For black-box models: each feature's average change of the output when it is "
    "switched from the baseline row's value (training median, or most frequent value) to the row's own, over "
    "random feature orders (Captum); the scores add up to F(x) − F(baseline) exactly, and more orders make "
    "each one more precise (the convergence table).",
    "relative standard error": "Shapley value sampling: the largest feature's standard error across batches of "
    "permutations, divided by the sum of the example's |attributions| (so 0.05 means the least settled feature "
    "is uncertain by 5% of the whole attribution, not of its own score).",
    "relative completeness error": "How far the attributions' sum is from F(x) − F(baseline), relative to that "
    "change; more integration steps make it smaller.",
    "comprehensiveness / sufficiency (AOPC)": "How much the predicted-class probability drops when the top-ranked "
    "words are removed (higher is better), or when only they are kept (lower is better), averaged over 1–50%.",
    "protected attribution share": "Share of the absolute attribution that falls on words naming a sensitive "
    "attribute.",
    "epsilon, delta (differential privacy)": "The privacy budget: smaller epsilon means any one training row can "
    "change what the model learns less; delta is the small probability that the bound fails.",
    "membership inference AUC": "How well an attacker tells training rows from held-out rows by their loss "
    "(0.5 = no better than chance).",
    "empirical epsilon lower bound": "The smallest epsilon consistent with the attack's measured error rates "
    "(95% Clopper–Pearson); no training run can be more private than this bound.",
    "95% interval": "A range that covers the true value in 95% of repeated samples (bootstrap, or DeLong for AUC).",
    "gate": "A rule on one metric. With an interval it passes only if the whole interval meets the threshold; "
    "an interval that straddles the threshold is inconclusive.",
}


#: The integrated-gradients entry, by what the attributions are over (the explain result says).
IG_TERMS = {
    "words": "How much each word moved the model's output from a neutral baseline text ({baseline} tokens in "
    "place of every word, special tokens kept) to the real one; word pieces are summed into words, and the "
    "scores add up to that total change (completeness).",
    "features": "How much each feature moved the model's output from a baseline row, the mean of the training "
    "rows' encoded features (numbers standardised, categories one-hot), to the real one; one-hot columns are "
    "summed into their feature, and the scores add up to that total change (completeness).",
}
EXPLAIN_TERMS = (
    "integrated gradients",
    "shapley value sampling",
    "relative standard error",
    "relative completeness error",
    "comprehensiveness / sufficiency (AOPC)",
    "protected attribution share",
)


def glossary(result: AuditResult) -> dict[str, str]:
    """The glossary for what this run did: explanation terms only when attributions were made,
    described for the units and baseline they were made with."""
    explained = [r.summary() for r in result.auditors.values()]
    explained = [s for s in explained if "units" in s and "baseline" in s and "relative_delta" in s]
    out = dict(GLOSSARY)
    if not explained:
        return {k: v for k, v in out.items() if k not in EXPLAIN_TERMS}
    units, baseline = explained[0]["units"], explained[0]["baseline"]
    if explained[0].get("method") == "shapley_value_sampling":
        out.pop("integrated gradients")
    else:
        out.pop("shapley value sampling")
        out.pop("relative standard error")
    if "integrated gradients" in out:
        out["integrated gradients"] = IG_TERMS.get(units, IG_TERMS["words"]).format(baseline=str(baseline).upper())
    if units == "features":
        out["comprehensiveness / sufficiency (AOPC)"] = out["comprehensiveness / sufficiency (AOPC)"].replace(
            "words", "features"
        )
        out["protected attribution share"] = "Share of the absolute attribution that falls on features (or "
        "feature values) naming a sensitive attribute."
    return out


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("auditkit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = number
    env.filters["interval"] = interval
    env.filters["script_json"] = script_json
    return env


def script_json(value: object) -> Markup:
    """JSON safe inside a <script type="application/json"> element."""
    import json

    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render(result: AuditResult) -> str:
    sections = [build_section(name, r, result.gates) for name, r in result.auditors.items()]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            result=result,
            verdict=result.verdict,
            headline=headline(result),
            gates=result.gates,
            gate_text=describe_gate,
            with_baseline=any(g.baseline is not None for g in result.gates),
            baseline_text=describe_baseline,
            sections=sections,
            provenance=asdict(result.provenance),
            glossary=glossary(result),
            nonce=secrets.token_urlsafe(18),
            plotly_js=Markup(get_plotlyjs().replace("</script", "<\\/script")),
        )
    )


def write(result: AuditResult, path: Path) -> None:
    path.write_text(render(result), encoding="utf-8")
