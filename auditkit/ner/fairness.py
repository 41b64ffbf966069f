"""``fairness`` for token classifiers: the name probe, entity F1 per group of sentences, and
counterfactual word swaps (the share of sentences whose entities change)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import PrivateAttr

from auditkit.adapters.capabilities import Tagger
from auditkit.auditors.fairness import NameProbe, left_out_moves
from auditkit.ner.metrics import EntityCounts, count_entities, rates
from auditkit.ner.predictions import TokenPredictions
from auditkit.ner.probe import ProbeSet, load_names, load_templates, mention_records, probe_report, recognised
from auditkit.ner.tags import spans
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.groups import Estimate, GroupRules, group_disparity, slice_name
from auditkit.stats.intervals import bootstrap_means, percentile_interval
from auditkit.text_swaps import TextSwap

if TYPE_CHECKING:
    from auditkit.auditors.base import AuditContext

TagFn = Callable[[list[list[str]]], list[list[str]]]  # sentences of words -> IOB2 tags


class TokenFairnessResult(AuditorResult):
    task: str = "token-classification"
    confidence: float
    n_boot: int
    small_groups: str = "inconclusive"
    name_probe: dict[str, dict[str, Any]]
    by_group: dict[str, dict[str, dict[str, Any]]]
    disparities: dict[str, dict[str, Any]]
    counterfactual: dict[str, dict[str, Any]]
    _probe_records: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def probe_records(self) -> list[dict[str, Any]]:
        return self._probe_records

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for probe, report in self.name_probe.items():
            for key in ("name_recall_ratio", "name_recall_difference"):
                out[f"{key}[{probe}]"] = self._compared(report["disparity"], report["by_group"], key)
        for feature, d in self.disparities.items():
            for key in ("entity_f1_ratio", "entity_f1_difference"):
                out[f"{key}[{feature}]"] = self._compared(d, self.by_group[feature], key)
        for name, swap in self.counterfactual.items():
            out[f"counterfactual_flip_rate[{name}]"] = block_value(swap, "flip_rate")
        return out

    def _compared(self, block: dict[str, Any], groups: dict[str, Any], key: str) -> MetricValue:
        """A disparity over the groups it compared; groups left out as too small make it undecided unless
        ``small_groups: exclude``, as on the classification path."""
        value = block_value(block, key)
        left_out = tuple(g for g in groups if g not in block.get("groups_compared", []))
        if not left_out or value.value is None:
            return value
        why = ", ".join(f"'{g}' ({groups[g].get('insufficient', 'left out')})" for g in left_out)
        undecided = self.small_groups == "inconclusive"
        reason = f"compares {len(groups) - len(left_out)} of {len(groups)} groups; left out as too small: {why}"
        if undecided:
            reason += "; set auditors.fairness.small_groups: exclude to gate on the groups compared"
        how = "ratio" if key.endswith("_ratio") else "difference"
        moves = left_out_moves(how, block.get("method", "between_groups"))
        return MetricValue(value.value, value.ci, reason, left_out, undecided, moves)


def block_value(block: dict[str, Any], key: str) -> MetricValue:
    ci = block.get("ci", {}).get(key)
    return MetricValue(block.get(key), tuple(ci) if ci else None, block.get(f"{key}_reason"))


def metric_ids(probes: list[str], slices: list[str], swaps: list[str]) -> set[str]:
    ids = {f"{k}[{p}]" for p in probes for k in ("name_recall_ratio", "name_recall_difference")}
    ids |= {f"{k}[{s}]" for s in slices for k in ("entity_f1_ratio", "entity_f1_difference")}
    return ids | {f"counterfactual_flip_rate[{s}]" for s in swaps}


def build_probe(probe: NameProbe, base: Path) -> ProbeSet:
    """Every template filled with every name of the probe's names file (paths relative to ``base``)."""
    names, groups = load_names(base / probe.names, probe.group_column, probe.name_column)
    templates = load_templates(base / probe.templates if probe.templates else None)[: probe.n_templates]
    return ProbeSet(templates, names, groups)


def score_probe(
    probe: NameProbe,
    probe_set: ProbeSet,
    tags: list[list[str]],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    method: str = "between_groups",
) -> tuple[dict[str, Any], np.ndarray]:
    """One model's tags of the probe sentences -> recall per group (the report) and the (names, templates) hits."""
    hits = recognised(probe_set, tags, probe.person_type)
    report = probe_report(
        probe_set, hits, n_boot=n_boot, confidence=confidence, seed=seed, min_names=probe.min_names, method=method
    )
    report["person_type"] = probe.person_type
    return report, hits


def run_probe(
    probe: NameProbe,
    base: Path,
    tag: TagFn,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    method: str = "between_groups",
) -> dict[str, Any]:
    """Fill every template with every name, tag the sentences, and report recall per group."""
    common = {"n_boot": n_boot, "confidence": confidence, "seed": seed, "method": method}
    return run_probe_with_mentions("", probe, base, tag, **common)[0]


def run_probe_with_mentions(
    probe_name: str,
    probe: NameProbe,
    base: Path,
    tag: TagFn,
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    method: str = "between_groups",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`run_probe`'s report, and one record per mention for ``name_probe.jsonl``."""
    probe_set = build_probe(probe, base)
    tags = tag(probe_set.sentences)
    report, hits = score_probe(probe, probe_set, tags, n_boot=n_boot, confidence=confidence, seed=seed, method=method)
    return report, mention_records(probe_name, probe_set, tags, hits, probe.person_type)


ENTITY_DISPARITIES = (("entity_f1_ratio", "ratio"), ("entity_f1_difference", "difference"))


def entity_f1_by_group(
    p: TokenPredictions, groups: list[str], rules: GroupRules, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Micro entity F1 per group of sentences, resampling sentences within each group; its ratio and
    difference with the classification disparities' rules: groups below ``min_group_size`` sentences or
    ``min_class_size`` gold entities are left out, intervals are simultaneous, ``method`` is honoured."""
    counts = count_entities(p.y_true, p.y_pred)
    labels = np.asarray(groups)
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    per_sentence = np.column_stack([counts.tp.sum(1), counts.gold.sum(1), counts.pred.sum(1)]).astype(float)
    totals = []  # per group: (1 + B, 3) sums of tp, gold, predicted; row 0 observed
    for group in names:
        rows = per_sentence[labels == group]
        totals.append(np.vstack([rows.sum(0), bootstrap_means(rows, rules.n_boot, rng) * len(rows)]))
    f1 = np.column_stack([rates(*t.T)["f1"] for t in totals])  # (1 + B, G)
    overall = rates(*sum(totals).T)["f1"][:, None]
    by_group: dict[str, dict[str, Any]] = {}
    eligible = []
    for k, group in enumerate(names):
        sub = counts.subset(labels == group)
        n, gold = int((labels == group).sum()), int(sub.gold.sum())
        interval, _ = percentile_interval(f1[1:, k], rules.confidence)
        entry: dict[str, Any] = {
            "n_sentences": n,
            "n_gold_entities": gold,
            "entity_f1": None if np.isnan(f1[0, k]) else float(f1[0, k]),
            "entity_precision": _rate(sub, "precision"),
            "entity_recall": _rate(sub, "recall"),
            "ci": {"entity_f1": list(interval) if interval and not np.isnan(f1[0, k]) else None},
        }
        if entry["entity_f1"] is None:
            entry["entity_f1_reason"] = "no gold or predicted entities"
        why = (
            f"{n} sentences, below min_group_size {rules.min_group_size}"
            if n < rules.min_group_size
            else f"{gold} gold entities, below min_class_size {rules.min_class_size}"
            if gold < rules.min_class_size
            else entry.get("entity_f1_reason")
        )
        entry["status"] = "insufficient" if why else "ok"
        if why:
            entry["insufficient"] = why
        else:
            eligible.append(k)
        by_group[group] = entry
    disparity: dict[str, Any] = {"groups_compared": [names[k] for k in eligible], "ci": {}, "method": rules.method}
    for key, how in ENTITY_DISPARITIES:
        if len(eligible) < 2:
            estimate = Estimate(None, reason=f"{len(eligible)} groups meet the minimum-size rules; need 2 to compare")
        elif f1[0, eligible].max() == 0:
            estimate = Estimate(None, reason="every compared group's entity F1 is 0")
        else:
            estimate = group_disparity(f1, overall, how, eligible, rules)
        disparity[key], disparity["ci"][key] = estimate.value, list(estimate.ci) if estimate.ci else None
        if estimate.reason:
            disparity[f"{key}_reason"] = estimate.reason
    return by_group, disparity


def _rate(counts: EntityCounts, name: str) -> float | None:
    value = rates(counts.tp.sum(), counts.gold.sum(), counts.pred.sum())[name]
    return None if np.isnan(value) else float(value)


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
    probes, mentions = {}, []
    for k, (name, probe) in enumerate(settings.name_probes.items()):
        probes[name], records = run_probe_with_mentions(
            name,
            probe,
            base,
            lambda s: tag(s, context.progress),
            seed=context.seed + k,
            method=settings.method,
            **common,
        )
        mentions += records
    by_group, disparities = {}, {}
    frame = context.data.test.frame
    for features in settings.slices(context.config):
        groups = frame[list(features)].astype(str).agg("*".join, axis=1).tolist()
        name = slice_name(features)
        by_group[name], disparities[name] = entity_f1_by_group(p, groups, settings.rules(), context.seed)
    swaps = {
        name: counterfactual(p, swap, lambda s: tag(s, context.progress), seed=context.seed, **common)
        for name, swap in settings.counterfactual.items()
    }
    result = TokenFairnessResult(
        small_groups=settings.small_groups,
        confidence=settings.confidence,
        n_boot=settings.n_boot,
        name_probe=probes,
        by_group=by_group,
        disparities=disparities,
        counterfactual=swaps,
    )
    result._probe_records = mentions
    return result


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
