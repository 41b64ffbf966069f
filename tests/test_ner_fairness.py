"""NER fairness: per-group entity F1, counterfactual word swaps, and the name probe through a tagger."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from auditkit.config import GateConfig
from auditkit.gates import evaluate_gates
from auditkit.ner.fairness import (
    NameProbe,
    TokenFairnessResult,
    counterfactual,
    entity_f1_by_group,
    run_probe,
    run_probe_with_mentions,
)
from auditkit.ner.predictions import TokenPredictions
from auditkit.report.tables import write_name_probe
from auditkit.results import AuditResult
from auditkit.stats.groups import GroupRules
from auditkit.text_swaps import TextSwap
from tests.conftest import ROOT

DATA = ROOT / "audits" / "data"


def predictions(gold, pred):
    n = len(gold)
    return TokenPredictions(
        np.array([f"s{i}" for i in range(n)]),
        [[f"w{j}" for j in range(len(g))] for g in gold],
        gold,
        pred,
        [[0.9] * len(g) for g in gold],
    )


def test_entity_f1_per_group_equals_seqeval_on_each_group():
    rng = np.random.default_rng(0)
    gold, pred, groups = [], [], []
    for i in range(200):
        g = ["B-PER", "O", "B-LOC", "I-LOC"]
        group = "x" if i % 2 else "y"
        miss = rng.random() < (0.1 if group == "x" else 0.5)
        gold.append(g)
        pred.append(["O", "O", "B-LOC", "I-LOC"] if miss else list(g))
        groups.append(group)
    p = predictions(gold, pred)
    rules = GroupRules(min_group_size=30, min_class_size=10, n_boot=300)
    by_group, disparity = entity_f1_by_group(p, groups, rules, seed=0)
    for group in ("x", "y"):
        idx = [i for i, g in enumerate(groups) if g == group]
        expected = f1_score([gold[i] for i in idx], [pred[i] for i in idx], mode="strict", scheme=IOB2)
        assert by_group[group]["entity_f1"] == pytest.approx(expected, abs=1e-12)
    assert disparity["entity_f1_difference"] == pytest.approx(by_group["x"]["entity_f1"] - by_group["y"]["entity_f1"])
    low, high = disparity["ci"]["entity_f1_ratio"]
    assert low <= disparity["entity_f1_ratio"] <= high
    # to_overall compares each group with every sentence pooled: a smaller largest gap than between groups
    _, pooled = entity_f1_by_group(p, groups, GroupRules(30, 10, "to_overall", 0.95, 300), seed=0)
    overall = f1_score(gold, pred, mode="strict", scheme=IOB2)
    worst = max(abs(by_group[g]["entity_f1"] - overall) for g in ("x", "y"))
    assert pooled["entity_f1_difference"] == pytest.approx(worst)
    assert pooled["entity_f1_difference"] < disparity["entity_f1_difference"]


def test_a_group_with_few_gold_entities_is_left_out_and_the_gate_undecided():
    gold = [["B-PER", "O"]] * 60 + [["O", "O"]] * 38 + [["B-PER", "O"]] * 2
    pred = [["B-PER", "O"]] * 40 + [["O", "O"]] * 20 + [["O", "O"]] * 38 + [["B-PER", "O"]] * 2
    groups = ["a"] * 30 + ["b"] * 30 + ["c"] * 40
    rules = GroupRules(min_group_size=20, min_class_size=5, n_boot=200)
    by_group, disparity = entity_f1_by_group(predictions(gold, pred), groups, rules, seed=0)
    assert by_group["c"]["status"] == "insufficient" and "2 gold entities" in by_group["c"]["insufficient"]
    assert disparity["groups_compared"] == ["a", "b"]
    for small_groups, undecided in (("inconclusive", True), ("exclude", False)):
        result = TokenFairnessResult(
            confidence=0.95, n_boot=200, small_groups=small_groups, name_probe={}, counterfactual={},
            by_group={"origin": by_group}, disparities={"origin": disparity},
        )  # fmt: skip
        value = result.metric_values()["entity_f1_ratio[origin]"]
        assert value.left_out == ("c",) and value.undecided is undecided and "2 gold entities" in value.reason


def test_small_groups_make_the_disparity_null():
    p = predictions([["B-PER"]] * 10, [["B-PER"]] * 10)
    _, disparity = entity_f1_by_group(p, ["a"] * 5 + ["b"] * 5, GroupRules(min_group_size=30, n_boot=50), seed=0)
    assert disparity["entity_f1_ratio"] is None and disparity["entity_f1_ratio_reason"]


def test_counterfactual_counts_sentences_whose_entities_change():
    tokens = [["he", "met", "Bo"], ["she", "met", "Bo"], ["they", "met", "Bo"]]
    p = TokenPredictions(
        np.array(["a", "b", "c"]), tokens, [["O", "O", "B-PER"]] * 3, [["O", "O", "B-PER"]] * 3, [[1.0] * 3] * 3
    )

    def tagger(sentences):  # tags Bo as a person only after "he"
        return [["O", "O", "B-PER" if s[0] == "he" else "O"] for s in sentences]

    result = counterfactual(p, TextSwap(pairs=[("he", "she")]), tagger, n_boot=100, confidence=0.95, seed=0)
    assert result["n"] == 2  # "they" is not edited
    assert result["flip_rate"] == 0.5  # "he" -> "she" loses the person; "she" -> "he" keeps it
    none = counterfactual(p, TextSwap(pairs=[("x", "y")]), tagger, n_boot=100, confidence=0.95, seed=0)
    assert none["flip_rate"] is None and none["flip_rate_reason"]


def test_a_tagger_that_finds_no_entity_has_no_flip_rate():
    tokens = [["he", "met", "Bo"], ["she", "met", "Bo"]]
    nothing = [["O", "O", "O"]] * 2
    p = TokenPredictions(np.array(["a", "b"]), tokens, [["O", "O", "B-PER"]] * 2, nothing, [[1.0] * 3] * 2)
    swap = TextSwap(pairs=[("he", "she")])
    blind = counterfactual(p, swap, lambda s: [["O"] * len(w) for w in s], n_boot=100, confidence=0.95, seed=0)
    assert blind["n"] == 2 and blind["flip_rate"] is None and "no entity" in blind["flip_rate_reason"]

    def after_he(sentences):  # finds Bo only after "he": the swap creates an entity, which counts
        return [["O", "O", "B-PER" if s[0] == "he" else "O"] for s in sentences]

    assert counterfactual(p, swap, after_he, n_boot=100, confidence=0.95, seed=0)["flip_rate"] == 0.5


def test_probe_gate_fails_four_fifths_for_a_tagger_that_ignores_one_group(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("name,origin\n" + "".join(f"A{i},a\nB{i},b\n" for i in range(15)), encoding="utf-8")

    def tagger(sentences):
        return [["B-person" if w.startswith("A") and w[1:].isdigit() else "O" for w in s] for s in sentences]

    probe = NameProbe(names=names.name, group_column="origin")
    report = run_probe(probe, tmp_path, tagger, n_boot=200, confidence=0.95, seed=0)
    result = TokenFairnessResult(
        confidence=0.95, n_boot=200, name_probe={"origin": report}, by_group={}, disparities={}, counterfactual={}
    )
    gate = GateConfig(metric="fairness.name_recall_ratio[origin]", op=">=", threshold=0.8, source="four-fifths")
    (verdict,) = evaluate_gates([gate], {"fairness": result})
    assert verdict.status == "fail" and verdict.value == 0.0


HOSTILE_NAMES = ['=HYPERLINK("http://x")', "<b>&amp;", 'Quo"te\\', "+1-1", "Zoë\u200b\x7f"]


def test_probe_mentions_are_one_record_per_name_and_template_and_survive_hostile_names(tmp_path):
    names = [*(f"{n}{i}" for i, n in enumerate(HOSTILE_NAMES * 3)), *(f"B{i}" for i in range(15))]
    rows = "".join(f"{a},a\n{b},b\n" for a, b in zip(names[:15], names[15:], strict=True))
    (tmp_path / "names.csv").write_text("name,origin\n" + rows, encoding="utf-8")
    (tmp_path / "t.txt").write_text("Hello {name} !\n{name} met Bo .\nI saw {name} there\n", encoding="utf-8")

    def person(i: int, word: str) -> bool:  # misses a name opening a sentence and B1, B10-B14; takes Bo too
        return i > 0 and not word.startswith("B1") and (word[:1].isupper() or word[:1] in '=<"+')

    def tagger(sentences):
        return [["B-person" if person(i, w) else "O" for i, w in enumerate(s)] for s in sentences]

    probe = NameProbe(names="names.csv", group_column="origin", templates="t.txt", min_names=2)
    report, mentions = run_probe_with_mentions("origin", probe, tmp_path, tagger, n_boot=50, confidence=0.95, seed=0)
    assert len(mentions) == 30 * 3 and {(m["name"], m["template_index"]) for m in mentions} == {
        (n, t) for n in names for t in range(3)
    }
    second = next(m for m in mentions if m["name"] == "B0" and m["template_index"] == 1)
    assert second["tokens"] == ["B0", "met", "Bo", "."] and second["template"] == "{name} met Bo ."
    assert not second["recognised"] and second["slot_tag"] == "O" and second["pred"] == [[2, 3, "person"]]
    for group, r in report["by_group"].items():
        hits = [[m["recognised"] for m in mentions if m["name"] == n and m["group"] == group] for n in names]
        assert np.mean([np.mean(h) for h in hits if h]) == r["recall"]  # exactly: the same means
    assert report["by_group"]["a"]["recall"] == pytest.approx(2 / 3)
    assert report["by_group"]["b"]["recall"] == pytest.approx(9 / 15 * 2 / 3)

    write_name_probe(cast(AuditResult, SimpleNamespace(probe_mentions=mentions)), tmp_path / "name_probe.jsonl")
    lines = (tmp_path / "name_probe.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and [json.loads(line) for line in lines[:-1]] == mentions  # one line each, intact
    write_name_probe(cast(AuditResult, SimpleNamespace(probe_mentions=[])), tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()  # no probe, no file


def test_probe_with_the_committed_names_and_bundled_templates():
    probe = NameProbe(names="probe_names.csv", group_column="sex")

    def tagger(sentences):  # recognises every capitalised word that is not the first word
        return [["B-person" if i and w[:1].isupper() else "O" for i, w in enumerate(s)] for s in sentences]

    report = run_probe(probe, DATA, tagger, n_boot=100, confidence=0.95, seed=0)
    assert set(report["by_group"]) == {"female", "male"}
    assert report["by_group"]["female"]["n_mentions"] == 40 * report["n_templates"]
    assert 0 < report["by_group"]["male"]["recall"] < 1  # names opening a template are missed
