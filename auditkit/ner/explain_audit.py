"""``explain`` for token classifiers: IG of the tag at chosen words (entities the model found and the ones it
missed), completeness-checked, sharded like every engine (in process or on Ray); context words that drive each
entity type, faithfulness per explained word, and the share of attribution on protected words."""

from __future__ import annotations

from typing import Any

import numpy as np

from auditkit.errors import AuditError
from auditkit.explain import token_ig  # noqa: F401  (registers the token engine)
from auditkit.explain.common import Attribution
from auditkit.explain.engines import EngineOptions, engine_for
from auditkit.explain.sharded import EngineFactory, explain_sharded
from auditkit.explain.views import protected_shares, unmatched_terms
from auditkit.ner.explain_views import context_words, faithfulness_summary, word_faithfulness
from auditkit.ner.explain_words import Word, choose_words, entity_type
from auditkit.ner.predictions import TokenPredictions
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.intervals import bootstrap_means, percentile_interval


class TokenExplainResult(AuditorResult):
    method: str = "integrated_gradients"
    task: str = "token-classification"
    n_examples: int  # explained words
    target: str  # "predicted" or "gold"
    output: str
    tolerance: float
    baseline: str
    include_outside: bool
    explained: dict[str, int]  # explained words by why: predicted, missed, outside
    left_out: dict[str, int]  # candidate words that could not be explained, by reason
    steps: dict[str, Any]
    relative_delta: dict[str, float]
    context_words_by_type: dict[str, dict[str, list[dict[str, Any]]]]  # type -> toward / away -> rows
    top_tokens: list[dict[str, Any]]  # context words toward the explained tag, over every type
    top_negative_tokens: list[dict[str, Any]]
    protected_attribution_share: dict[str, float]
    protected_attribution_share_ci: dict[str, list[float] | None]
    protected_attribution_share_by_group: dict[str, dict[str, float]]
    protected_words_missing: dict[str, list[str]]
    faithfulness: dict[str, Any]
    records: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"records"}) | {"examples": self.records[:12]}

    def attribution_records(self) -> list[dict[str, Any]]:
        return self.records

    def metric_values(self) -> dict[str, MetricValue]:
        f = self.faithfulness
        out = {
            "relative_delta_share_above_tolerance": MetricValue(self.relative_delta["share_above_tolerance"]),
            "comprehensiveness_aopc": MetricValue(f["comprehensiveness_aopc"]),
            "sufficiency_aopc": MetricValue(f["sufficiency_aopc"]),
        }
        for feature, share in self.protected_attribution_share.items():
            ci = self.protected_attribution_share_ci.get(feature)
            out[f"protected_attribution_share[{feature}]"] = MetricValue(share, tuple(ci) if ci else None)
        return out


def token_explain(context: Any, settings: Any) -> TokenExplainResult:
    """IG for the chosen words of the test sentences (see :mod:`auditkit.ner.explain_words`)."""
    p: TokenPredictions = context.predictions("test")
    adapter, test = context.adapter, context.data.test
    rng = np.random.default_rng(context.seed)
    include_outside = settings.include_outside
    choice = choose_words(
        p,
        n=settings.n_examples,
        ids=settings.ids,
        target=settings.target,
        include_outside=include_outside,
        label2id=adapter.label2id,
        rng=rng,
    )
    words = choice.words
    if not words:
        raise AuditError(
            "auditors.explain: no word to explain: the model tags no entity in the test split and it holds none"
            + ("" if include_outside else " (include_outside explains O words)")
        )
    engine_cls = engine_for(type(adapter))
    if engine_cls is None:
        raise AuditError(f"auditors.explain: no attribution engine for {type(adapter).__name__}")
    options = EngineOptions(settings.output, settings.baseline_token, settings.token_budget, settings.quadrature)
    engine = engine_cls.create(adapter, context.data, options)
    factory = EngineFactory(
        engine_cls, type(adapter), context.config.model, context.config.data, context.data, options, adapter, engine
    )
    positions = np.array([w.sentence for w in words], dtype=int)
    targets = [(w.position, w.tag) for w in words]
    attributions, texts = explain_sharded(
        context.executor,
        factory,
        test,
        positions,
        targets,
        None,
        settings.tolerance,
        settings.schedule,
        context.progress,
    )
    id2label = adapter.id2label
    kinds = [entity_type(id2label[a.target[1]]) for a in attributions]  # signs point toward the explained tag
    per_word = word_faithfulness(
        attributions, engine.perturb, engine.probabilities, settings.faithfulness_percents, rng
    )
    steps = np.array([a.steps for a in attributions])
    deltas = np.array([a.relative_delta for a in attributions])
    kept = dict(top_k=settings.top_k, min_count=settings.min_count, n_boot=settings.n_boot, rng=rng)
    overall = context_words(attributions, ["all"] * len(attributions), **kept).get("all", {})
    protected = _protected(settings, attributions, texts, test.frame.iloc[positions], rng)
    return TokenExplainResult(
        n_examples=len(attributions),
        target=settings.target,
        output=settings.output,
        tolerance=settings.tolerance,
        baseline=settings.baseline_token,
        include_outside=include_outside,
        explained={why: sum(w.why == why for w in words) for why in ("predicted", "missed", "outside")},
        left_out=choice.left_out,
        steps={
            "quadrature": settings.quadrature,
            "mean": float(steps.mean()),
            "max": int(steps.max()),
            "histogram": {str(k): int((steps == k).sum()) for k in settings.schedule},
        },
        relative_delta={
            "median": float(np.median(deltas)),
            "p95": float(np.percentile(deltas, 95)),
            "share_above_tolerance": float((deltas > settings.tolerance).mean()),
        },
        context_words_by_type=context_words(attributions, kinds, **kept),
        top_tokens=overall.get("toward", []),
        top_negative_tokens=overall.get("away", []),
        **protected,
        faithfulness={
            **faithfulness_summary(per_word, kinds),
            "percents": list(settings.faithfulness_percents),
            "note": "per explained word, over its context words: the explained word itself is never erased",
        },
        records=[
            _record(a, w, id2label, kind, f) for a, w, kind, f in zip(attributions, words, kinds, per_word, strict=True)
        ],
    )


def _protected(
    settings: Any, attributions: list[Attribution], texts: list[str | None], frame: Any, rng: np.random.Generator
) -> dict[str, Any]:
    """Share of |attribution| on protected words (every word of the sentence, as for classifiers), with a
    bootstrap interval over explained words, and per group where the sentence metadata has the feature."""
    shares: dict[str, float] = {}
    share_ci: dict[str, list[float] | None] = {}
    by_group: dict[str, dict[str, float]] = {}
    missing: dict[str, list[str]] = {}
    for feature, terms in settings.protected_words.items():
        per_word = protected_shares(attributions, texts, terms)
        if unmatched := unmatched_terms(attributions, texts, terms):
            missing[feature] = unmatched
        shares[feature] = float(per_word.mean())
        interval, _ = percentile_interval(bootstrap_means(per_word[:, None], settings.n_boot, rng)[:, 0], 0.95)
        share_ci[feature] = list(interval) if interval else None
        if feature in frame.columns:
            groups = frame[feature].astype(str).to_numpy()
            by_group[feature] = {g: float(per_word[groups == g].mean()) for g in sorted(set(groups))}
    return {
        "protected_attribution_share": shares,
        "protected_attribution_share_ci": share_ci,
        "protected_attribution_share_by_group": by_group,
        "protected_words_missing": missing,
    }


def _record(
    a: Attribution, word: Word, id2label: dict[int, str], kind: str, faith: dict[str, float] | None
) -> dict[str, Any]:
    """One line of attributions.jsonl: the contract's fields, plus which word, why, and its tags."""
    tag = id2label[a.target[1]]
    return {
        "id": a.id,
        "target": tag,
        "position": word.position,
        "tag": tag,  # the tag explained, as the model names it
        "why": word.why,  # predicted (the model tags an entity), missed (a gold entity tagged O), outside
        "type": kind,  # entity type of the tag explained (O for the O tag)
        "gold": word.gold,
        "predicted": word.predicted,
        "tokens": [{"token": u, "score": float(v)} for u, v in zip(a.units, a.scores, strict=True)],
        "delta": a.relative_delta,
        "steps": a.steps,
        "f_input": a.f_input,
        "f_baseline": a.f_baseline,
        "faithfulness": faith,
    }
