"""``fairness`` for token classifiers: the name probe, entity F1 per group of sentences, and
counterfactual word swaps (the share of sentences whose entities change)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auditkit.adapters.capabilities import Tagger
from auditkit.auditors.fairness import NameProbe
from auditkit.ner.metrics import count_entities, entity_report, micro_f1_replicates
from auditkit.ner.predictions import TokenPredictions
from auditkit.ner.probe import ProbeSet, load_names, load_templates, probe_report, recognised
from auditkit.ner.tags import spans
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.intervals import bootstrap_means, percentile_interval
from auditkit.text_swaps import TextSwap

if TYPE_CHECKING:
    from auditkit.auditors.base import AuditContext

TagFn = Callable[[list[list[str]]], list[list[str]]]  # sentences of words -> IOB2 tags


class TokenFairnessResult(AuditorResult):
    task: str = "token-classification"
    confidence: float
    n_boot: int
    name_probe: dict[str, dict[str, Any]]
    by_group: dict[str, dict[str, dict[str, Any]]]
    disparities: dict[str, dict[str, Any]]
    counterfactual: dict[str, dict[str, Any]]

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for probe, report in self.name_probe.items():
            d = report["disparity"]
            for key in ("name_recall_ratio", "name_recall_difference"):
                out[f"{key}[{probe}]"] = block_value(d, key)
        for feature, d in self.disparities.items():
            for key in ("entity_f1_ratio", "entity_f1_difference"):
                out[f"{key}[{feature}]"] = block_value(d, key)
        for name, swap in self.counterfactual.items():
            out[f"counterfactual_flip_rate[{name}]"] = block_value(swap, "flip_rate")
        return out


def block_value(block: dict[str, Any], key: str) -> MetricValue:
    ci = block.get("ci", {}).get(key)
    return MetricValue(block.get(key), tuple(ci) if ci else None, block.get(f"{key}_reason"))


def metric_ids(probes: list[str], features: list[str], swaps: list[str]) -> set[str]:
    ids = {f"{k}[{p}]" for p in probes for k in ("name_recall_ratio", "name_recall_difference")}
    ids |= {f"{k}[{f}]" for f in features for k in ("entity_f1_ratio", "entity_f1_difference")}
    return ids | {f"counterfactual_flip_rate[{s}]" for s in swaps}


def build_probe(probe: NameProbe, base: Path) -> ProbeSet:
    """Every template filled with every name of the probe's names file (paths relative to ``base``)."""
    names, groups = load_names(base / probe.names, probe.group_column, probe.name_column)
    templates = load_templates(base / probe.templates if probe.templates else None)[: probe.n_templates]
    return ProbeSet(templates, names, groups)


def score_probe(
    probe: NameProbe, probe_set: ProbeSet, tags: list[list[str]], *, n_boot: int, confidence: float, seed: int
) -> tuple[dict[str, Any], np.ndarray]:
    """One model's tags of the probe sentences -> recall per group (the report) and the (names, templates) hits."""
    hits = recognised(probe_set, tags, probe.person_type)
    report = probe_report(probe_set, hits, n_boot=n_boot, confidence=confidence, seed=seed, min_names=probe.min_names)
    report["person_type"] = probe.person_type
    return report, hits


def run_probe(probe: NameProbe, base: Path, tag: TagFn, *, n_boot: int, confidence: float, seed: int) -> dict[str, Any]:
    """Fill every template with every name, tag the sentences, and report recall per group."""
    probe_set = build_probe(probe, base)
    return score_probe(probe, probe_set, tag(probe_set.sentences), n_boot=n_boot, confidence=confidence, seed=seed)[0]


def entity_f1_by_group(
    p: TokenPredictions, groups: list[str], *, n_boot: int, confidence: float, seed: int, min_sentences: int
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Micro entity F1 per group of sentences with intervals; the lowest / highest ratio and the difference."""
    counts = count_entities(p.y_true, p.y_pred)
    labels = np.asarray(groups)
    by_group: dict[str, dict[str, Any]] = {}
    replicates: dict[str, np.ndarray] = {}
    for k, group in enumerate(sorted(set(groups))):
        mask = labels == group
        sub = counts.subset(mask)
        report = entity_report(sub, n_boot, confidence, seed + k)
        ok = int(mask.sum()) >= min_sentences and report["metrics"]["f1"] is not None
        by_group[group] = {
            "n_sentences": int(mask.sum()),
            "n_gold_entities": report["metrics"]["n_gold_entities"],
            "entity_f1": report["metrics"]["f1"],
            "entity_precision": report["metrics"]["precision"],
            "entity_recall": report["metrics"]["recall"],
            "ci": {"entity_f1": report["ci"]["f1"]},
            "status": "ok" if ok else "insufficient",
        }
        if report["metrics"]["f1"] is None:
            by_group[group]["entity_f1_reason"] = report["metrics"]["f1_reason"]
        if ok:
            replicates[group] = micro_f1_replicates(sub, n_boot, seed + k)
    disparity: dict[str, Any] = {"groups_compared": sorted(replicates), "ci": {}}
    if len(replicates) < 2:
        for key in ("entity_f1_ratio", "entity_f1_difference"):
            disparity[key] = None
            disparity[f"{key}_reason"] = f"fewer than two groups with {min_sentences}+ sentences and entities"
            disparity["ci"][key] = None
        return by_group, disparity
    point = np.array([by_group[g]["entity_f1"] for g in replicates])
    boot = np.column_stack(list(replicates.values()))
    disparity["entity_f1_difference"] = float(point.max() - point.min())
    interval, _ = percentile_interval(np.nanmax(boot, 1) - np.nanmin(boot, 1), confidence)
    disparity["ci"]["entity_f1_difference"] = list(interval) if interval else None
    if point.max() > 0:
        disparity["entity_f1_ratio"] = float(point.min() / point.max())
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(boot.max(1) > 0, boot.min(1) / boot.max(1), np.nan)
        interval, _ = percentile_interval(ratio, confidence)
        disparity["ci"]["entity_f1_ratio"] = list(interval) if interval else None
    else:
        disparity["entity_f1_ratio"], disparity["entity_f1_ratio_reason"] = None, "every group's entity F1 is 0"
        disparity["ci"]["entity_f1_ratio"] = None
    return by_group, disparity


def swap_words(words: list[str], swap: TextSwap) -> list[str]:
    """The swap applied word by word, so positions (and gold spans) stay aligned."""
    return [swap.apply(w) or w for w in words]


def counterfactual(
    p: TokenPredictions, swap: TextSwap, tag: TagFn, *, n_boot: int, confidence: float, seed: int
) -> dict[str, Any]:
    """Share of the sentences the swap edits whose predicted entities (span and type) change."""
    edited = [(i, swap_words(words, swap)) for i, words in enumerate(p.tokens)]
    edited = [(i, words) for i, words in edited if words != p.tokens[i]]
    if not edited:
        return {
            "n": 0,
            "flip_rate": None,
            "flip_rate_reason": "the swap changes no test sentence",
            "mean_abs_score_change": None,
            "mean_abs_score_change_reason": "token classification: the flip rate counts changed entities",
            "ci": {},
        }
    swapped_tags = tag([words for _, words in edited])
    if not any(spans(t) for t in [*p.y_pred, *swapped_tags]):  # a flip rate of 0 from a tagger that finds nothing
        return {
            "n": len(edited),
            "flip_rate": None,
            "flip_rate_reason": "the model predicts no entity in any test sentence, edited or not",
            "mean_abs_score_change": None,
            "mean_abs_score_change_reason": "token classification: the flip rate counts changed entities",
            "ci": {},
        }
    changed = np.array(
        [set(spans(new)) != set(spans(p.y_pred[i])) for (i, _), new in zip(edited, swapped_tags, strict=True)],
        dtype=float,
    )
    draws = bootstrap_means(changed[:, None], n_boot, np.random.default_rng(seed))[:, 0]
    interval, _ = percentile_interval(draws, confidence)
    examples = [
        {
            "id": str(p.ids[i]),
            "tokens": words,
            "before": [list(s) for s in spans(p.y_pred[i])],
            "after": [list(s) for s in spans(new)],
        }
        for ((i, words), new), flip in zip(zip(edited, swapped_tags, strict=True), changed, strict=True)
        if flip
    ][:5]
    return {
        "n": len(edited),
        "mean_abs_score_change": None,
        "mean_abs_score_change_reason": "token classification: the flip rate counts changed entities",
        "flip_rate": float(changed.mean()),
        "ci": {"flip_rate": list(interval) if interval else None},
        "examples": examples,
    }


def token_fairness(context: AuditContext, p: TokenPredictions, tagger: Tagger, settings: Any) -> TokenFairnessResult:
    """The fairness auditor on a token classifier: name probes, entity F1 per sentence group, word swaps."""
    tag = _memo(tagger.tag)
    base = Path(context.config.config_path).parent
    common = {"n_boot": settings.n_boot, "confidence": settings.confidence}
    probes = {
        name: run_probe(probe, base, lambda s: tag(s, context.progress), seed=context.seed + k, **common)
        for k, (name, probe) in enumerate(settings.name_probes.items())
    }
    by_group, disparities = {}, {}
    features = settings.features if settings.features is not None else list(context.config.data.sensitive_features)
    for feature in features:
        groups = context.data.test.frame[feature].astype(str).tolist()
        by_group[feature], disparities[feature] = entity_f1_by_group(
            p, groups, seed=context.seed, min_sentences=settings.min_group_size, **common
        )
    swaps = {
        name: counterfactual(p, swap, lambda s: tag(s, context.progress), seed=context.seed, **common)
        for name, swap in settings.counterfactual.items()
    }
    return TokenFairnessResult(
        confidence=settings.confidence,
        n_boot=settings.n_boot,
        name_probe=probes,
        by_group=by_group,
        disparities=disparities,
        counterfactual=swaps,
    )


def check_probes(probes: dict[str, NameProbe], base: Path) -> None:
    """Read every probe's names and templates when the config loads, so a bad file fails before any work."""
    for probe in probes.values():
        load_names(base / probe.names, probe.group_column, probe.name_column)
        load_templates(base / probe.templates if probe.templates else None)


def _memo(tag: Callable[..., list[list[str]]]) -> Callable[..., list[list[str]]]:
    """Tag each distinct sentence once: probes on the same names file share most of their sentences."""
    cache: dict[tuple[str, ...], list[str]] = {}

    def tagged(sentences: list[list[str]], progress: Any) -> list[list[str]]:
        todo = [s for s in dict.fromkeys(tuple(s) for s in sentences) if s not in cache]
        if todo:
            for words, tags in zip(todo, tag([list(s) for s in todo], progress), strict=True):
                cache[words] = tags
        return [cache[tuple(s)] for s in sentences]

    return tagged
