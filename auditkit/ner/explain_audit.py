"""``explain`` for token classifiers: IG for one word's predicted tag per sentence, completeness-checked,
context words that drive each entity type, and faithfulness against random rankings."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from auditkit.explain.common import Attribution
from auditkit.explain.faithfulness import faithfulness
from auditkit.ner.explain import TokenIG
from auditkit.ner.predictions import TokenPredictions
from auditkit.ner.tags import spans
from auditkit.results import AuditorResult, MetricValue


class TokenExplainResult(AuditorResult):
    method: str = "integrated_gradients"
    task: str = "token-classification"
    n_examples: int
    output: str
    tolerance: float
    steps: dict[str, Any]
    relative_delta: dict[str, float]
    context_words_by_type: dict[str, list[dict[str, Any]]]
    top_tokens: list[dict[str, Any]]  # context words over every type
    protected_attribution_share: dict[str, float] = {}  # not computed for token classification yet
    faithfulness: dict[str, Any]
    records: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"records"}) | {"examples": self.records[:12]}

    def attribution_records(self) -> list[dict[str, Any]]:
        return self.records

    def metric_values(self) -> dict[str, MetricValue]:
        return {
            "relative_delta_share_above_tolerance": MetricValue(self.relative_delta["share_above_tolerance"]),
            "comprehensiveness_aopc": MetricValue(self.faithfulness["comprehensiveness_aopc"]),
            "sufficiency_aopc": MetricValue(self.faithfulness["sufficiency_aopc"]),
        }


def choose_words(p: TokenPredictions, n: int, label2id: dict[str, int], rng: np.random.Generator) -> list[tuple]:
    """Up to ``n`` sentences, each with one word to explain: the first word of a predicted entity (a gold one
    when the model found none), spread over entity types; target = the model's tag at that word."""
    by_type: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for s in range(len(p)):
        found = spans(p.y_pred[s]) or spans(p.y_true[s])
        if not found:
            continue
        start, _, kind = found[int(rng.integers(len(found)))]
        tag = p.y_pred[s][start]
        if tag in label2id and p.scores[s][start] is not None:
            by_type[kind].append((s, start, tag))
    chosen: list[tuple[int, int, str]] = []
    pools = {k: list(rng.permutation(len(v))) for k, v in by_type.items()}
    while len(chosen) < n and any(pools.values()):
        for kind in sorted(by_type):  # round robin over types so rare types are explained too
            if pools[kind] and len(chosen) < n:
                chosen.append(by_type[kind][pools[kind].pop()])
    return sorted(chosen)


def token_explain(context: Any, settings: Any) -> TokenExplainResult:
    p: TokenPredictions = context.predictions("test")
    adapter = context.adapter
    rng = np.random.default_rng(context.seed)
    label2id = {str(k): int(v) for k, v in adapter.model.config.label2id.items()}
    chosen = choose_words(p, settings.n_examples, label2id, rng)
    ig = TokenIG(
        adapter.attribution_module(),
        adapter.embedding_layer(),
        adapter.tokenizer,
        adapter.device,
        max_length=adapter.max_length,
        output=settings.output,
        baseline_token=settings.baseline_token,
        quadrature=settings.quadrature,
        token_budget=settings.token_budget,
    )
    attributions = ig.attribute(
        [str(p.ids[s]) for s, _, _ in chosen],
        [p.tokens[s] for s, _, _ in chosen],
        [w for _, w, _ in chosen],
        [label2id[t] for _, _, t in chosen],
        settings.tolerance,
        context.progress,
        settings.schedule,
    )
    steps = np.array([a.steps for a in attributions]) if attributions else np.zeros(1, dtype=int)
    deltas = np.array([a.relative_delta for a in attributions]) if attributions else np.zeros(1)
    faith = faithfulness(attributions, ig.perturb, ig.probabilities, settings.faithfulness_percents, rng)
    records = [_record(a, position, tag) for a, (_, position, tag) in zip(attributions, chosen, strict=True)]
    return TokenExplainResult(
        n_examples=len(attributions),
        output=settings.output,
        tolerance=settings.tolerance,
        steps={"quadrature": settings.quadrature, "mean": float(steps.mean()), "max": int(steps.max())},
        relative_delta={
            "median": float(np.median(deltas)),
            "p95": float(np.percentile(deltas, 95)),
            "share_above_tolerance": float((deltas > settings.tolerance).mean()),
        },
        context_words_by_type=_context_words(attributions, chosen, settings.top_k),
        top_tokens=_context_words(attributions, [(s, w, "any") for s, w, _ in chosen], settings.top_k).get("any", []),
        faithfulness={
            "comprehensiveness_aopc": faith.comprehensiveness_aopc,
            "sufficiency_aopc": faith.sufficiency_aopc,
            "random_comprehensiveness_aopc": faith.random_comprehensiveness_aopc,
            "random_sufficiency_aopc": faith.random_sufficiency_aopc,
            "better_than_random": faith.better_than_random,
            "percents": list(settings.faithfulness_percents),
            "note": "the explained word itself is never erased",
        },
        records=records,
    )


def _context_words(attributions: list[Attribution], chosen: list[tuple], k: int) -> dict[str, list[dict[str, Any]]]:
    """Per entity type: the other words of the sentence with the largest mean attribution toward the tag."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a, (_, position, tag) in zip(attributions, chosen, strict=True):
        kind = tag.split("-", 1)[-1]
        for index, (word, score) in enumerate(zip(a.units, a.scores, strict=True)):
            if index != position:
                sums[kind][word.lower()] += float(score)
                counts[kind][word.lower()] += 1
    out = {}
    for kind in sorted(sums):
        rows = [
            {"token": w, "mean_attribution": sums[kind][w] / counts[kind][w], "count": counts[kind][w]}
            for w in sums[kind]
        ]
        rows.sort(key=lambda r: r["mean_attribution"], reverse=True)
        out[kind] = rows[:k]
    return out


def _record(a: Attribution, position: int, tag: str) -> dict[str, Any]:
    """One line of attributions.jsonl: the contract's fields plus ``position`` and ``tag``."""
    return {
        "id": a.id,
        "target": tag,
        "position": position,
        "tag": tag,
        "tokens": [{"token": u, "score": float(v)} for u, v in zip(a.units, a.scores, strict=True)],
        "delta": a.relative_delta,
        "steps": a.steps,
        "f_input": a.f_input,
        "f_baseline": a.f_baseline,
    }
