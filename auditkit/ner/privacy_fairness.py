"""The fairness cost of privacy for token classifiers: the fairness auditor's name probes, tagged by
every DP run and by the non-private reference, and each run's change in per-group recall.

The probe sentences, their seeds, intervals and group rules are the fairness auditor's, so the
reference's numbers read like ``fairness.name_probe`` of the audited model. A run that learned no
entities is degenerate: its ratios and every change derived from it are null with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.ner.fairness import build_probe, score_probe
from auditkit.ner.probe import recall_changes

DISPARITY_KEYS = ("name_recall_ratio", "name_recall_difference")


def degenerate_reason(pred_tags: Sequence[Sequence[str]], report: dict[str, Any]) -> str | None:
    """Why a run's test tags support no conclusion, or None: no entity predicted, one tag for every
    word, or an entity-F1 interval that reaches 0 (not distinguishable from finding nothing)."""
    words = {t for sentence in pred_tags for t in sentence}
    if report["metrics"]["n_pred_entities"] == 0:
        return "the run predicts no entity in any test sentence"
    if len(words) == 1:
        return f"the run predicts tag {next(iter(words))} for every test word"
    f1, ci = report["metrics"]["f1"], report["ci"].get("f1")
    if f1 is None:
        return f"entity F1 is undefined: {report['metrics'].get('f1_reason')}"
    if ci is not None and ci[0] <= 0.0:
        return f"entity F1 {f1:.3f} (95% CI {ci[0]:.3f} to {ci[1]:.3f}) is not distinguishable from 0"
    return None


class ProbeRuns:
    """The audit's name probes and their distinct sentences, which every run tags."""

    def __init__(self, fairness: Any, base: Path | None, seed: int):
        self.probes = dict(fairness.name_probes) if fairness is not None else {}
        self.n_boot = fairness.n_boot if fairness is not None else 0
        self.confidence = fairness.confidence if fairness is not None else 0.95
        self.seeds = {name: seed + k for k, name in enumerate(self.probes)}  # as the fairness auditor seeds them
        self.sets = {name: build_probe(p, base or Path(".")) for name, p in self.probes.items()}
        unique = list(dict.fromkeys(tuple(s) for ps in self.sets.values() for s in ps.sentences))
        self.row = {words: i for i, words in enumerate(unique)}
        self.sentences = [list(s) for s in unique]

    def measure(self, tags: list[list[str]], degenerate: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """One run's probe reports (the fairness auditor's shape) and hits from its ``tags`` of ``sentences``;
        ratios null for a degenerate run."""
        reports, hits = {}, {}
        for name, probe in self.probes.items():
            probe_set = self.sets[name]
            run_tags = [tags[self.row[tuple(s)]] for s in probe_set.sentences]
            reports[name], hits[name] = score_probe(
                probe, probe_set, run_tags, n_boot=self.n_boot, confidence=self.confidence, seed=self.seeds[name]
            )
            if degenerate:
                disparity = reports[name]["disparity"]
                _void(disparity, DISPARITY_KEYS, f"this run is degenerate: {degenerate}")
                disparity.pop("lowest_group", None), disparity.pop("highest_group", None)
        return reports, hits

    def changes(
        self, hits: dict[str, np.ndarray], reference: dict[str, np.ndarray], why: str | None
    ) -> dict[str, dict[str, Any]]:
        """Per probe: run minus reference recall per group, ratio and difference; all null with ``why``."""
        out = {}
        for name, probe in self.probes.items():
            change = recall_changes(
                self.sets[name],
                hits[name],
                reference[name],
                n_boot=self.n_boot,
                confidence=self.confidence,
                seed=self.seeds[name],
                min_names=probe.min_names,
            )
            if why:
                for group in change["by_group"].values():
                    _void(group, ("recall_change",), why)
                _void(change, tuple(f"{key}_change" for key in DISPARITY_KEYS), why)
            out[name] = change
        return out


def _void(block: dict[str, Any], keys: tuple[str, ...], reason: str) -> None:
    for key in keys:
        block[key], block[f"{key}_reason"] = None, reason
        block.setdefault("ci", {})[key] = None
