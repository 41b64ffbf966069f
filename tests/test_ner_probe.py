"""The demographic name probe: templates, name lists, per-group recall with intervals, ratio and difference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from auditkit.errors import AuditError
from auditkit.ner.probe import ProbeSet, load_names, load_templates, probe_report, recall_changes, recognised
from auditkit.ner.tags import OUTSIDE

ROOT = Path(__file__).resolve().parents[1]
NAMES = ROOT / "audits" / "data" / "probe_names.csv"


def test_bundled_templates():
    templates = load_templates()
    assert len(templates) >= 50
    assert all(t.words[t.slot] == "{name}" and t.words.count("{name}") == 1 for t in templates)


def test_user_templates_and_their_errors(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# mine\nHello {name} !\n\n", encoding="utf-8")
    assert [t.words for t in load_templates(path)] == [["Hello", "{name}", "!"]]
    path.write_text("Hello {name} !\n{name} and {name}\n", encoding="utf-8")
    with pytest.raises(AuditError, match=r"t\.txt:2: a template needs exactly one"):
        load_templates(path)
    path.write_text("Hello {name}!\n", encoding="utf-8")
    with pytest.raises(AuditError, match=r"t\.txt:1:"):
        load_templates(path)


def test_committed_names_are_reproducible(tmp_path):
    before = NAMES.read_bytes()
    subprocess.run([sys.executable, str(ROOT / "audits" / "data" / "prepare_probe_names.py")], check=True)
    assert NAMES.read_bytes() == before
    for column in ("sex", "race_ethnicity"):
        names, groups = load_names(NAMES, column)
        counts = {g: groups.count(g) for g in set(groups)}
        assert min(counts.values()) == 40, counts


def test_names_file_errors(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("name,sex\nAnna,female\n", encoding="utf-8")
    with pytest.raises(AuditError, match="at least two groups"):
        load_names(path, "sex")
    with pytest.raises(AuditError, match="column 'race'"):
        load_names(path, "race")
    path.write_text("name,sex\nAnna Maria,female\nBob,male\n", encoding="utf-8")
    with pytest.raises(AuditError, match=r"n\.csv:2: column 'name' must hold one word"):
        load_names(path, "sex")


def fake_tagger(probe: ProbeSet, miss: set[str], person: str = "person") -> list[list[str]]:
    """Tags the slot as a person unless the name is in ``miss``."""
    out = []
    for words, slot in zip(probe.sentences, probe.slots, strict=True):
        tags = [OUTSIDE] * len(words)
        if words[slot] not in miss:
            tags[slot] = f"B-{person}"
        out.append(tags)
    return out


def test_probe_recall_ratio_and_intervals():
    templates = load_templates()[:10]
    names = [f"A{i}" for i in range(40)] + [f"B{i}" for i in range(40)]
    probe = ProbeSet(templates, names, ["a"] * 40 + ["b"] * 40)
    hits = recognised(probe, fake_tagger(probe, {f"B{i}" for i in range(20)}), "person")
    report = probe_report(probe, hits, n_boot=1000, confidence=0.95, seed=0, min_names=10)
    assert report["by_group"]["a"]["recall"] == 1.0
    assert report["by_group"]["b"]["recall"] == 0.5
    assert report["disparity"]["name_recall_ratio"] == 0.5
    assert report["disparity"]["name_recall_difference"] == 0.5
    low, high = report["by_group"]["b"]["ci"]["recall"]
    assert low < 0.5 < high
    low, high = report["disparity"]["ci"]["name_recall_ratio"]
    assert low <= 0.5 <= high and high < 0.8  # clearly under the four-fifths line
    # The classification disparities' simultaneous interval: the range of lowest / highest over the box.
    from auditkit.ner.probe import group_draws
    from auditkit.stats.groups import GroupRules, group_disparity

    per_name, draws = group_draws(probe, hits, 1000, 0)
    values = np.vstack([[1.0, 0.5], np.column_stack([draws["a"], draws["b"]])])
    same = group_disparity(values, values.mean(axis=1, keepdims=True), "ratio", [0, 1], GroupRules(n_boot=1000))
    assert same.ci is not None and tuple(report["disparity"]["ci"]["name_recall_ratio"]) == same.ci
    assert report["by_group"]["b"]["lowest_names"][0]["recall"] == 0.0


def test_probe_requires_exact_span_and_type():
    templates = load_templates()[:3]
    probe = ProbeSet(templates, ["Ann", "Bo"], ["x", "y"])
    tagged = fake_tagger(probe, set())
    for words, slot, tags in zip(probe.sentences, probe.slots, tagged, strict=True):
        if words[slot] == "Bo":  # a span two words long is not the name
            tags[slot] = "B-person"
            if slot + 1 < len(tags):
                tags[slot + 1] = "I-person"
    hits = recognised(probe, tagged, "person")
    assert hits[0].all() and not hits[1].any()
    assert not recognised(probe, fake_tagger(probe, set(), person="PER"), "person").any()


def test_small_groups_and_zero_recall_are_inconclusive():
    templates = load_templates()[:4]
    probe = ProbeSet(templates, ["A1", "A2", "B1"], ["a", "a", "b"])
    hits = recognised(probe, fake_tagger(probe, set()), "person")
    report = probe_report(probe, hits, n_boot=100, confidence=0.95, seed=0, min_names=2)
    assert report["by_group"]["b"]["status"] == "insufficient"
    assert report["disparity"]["name_recall_ratio"] is None
    assert report["disparity"]["name_recall_ratio_reason"]
    probe = ProbeSet(templates, ["A1", "B1"], ["a", "b"])
    none = probe_report(probe, np.zeros((2, 4), dtype=bool), n_boot=100, confidence=0.95, seed=0, min_names=1)
    for key in ("name_recall_ratio", "name_recall_difference"):  # a difference of 0 would pass a gate
        assert none["disparity"][key] is None and none["disparity"]["ci"][key] is None
        assert "no group's names were recognised" in none["disparity"][f"{key}_reason"]


def test_a_run_that_finds_nobody_has_no_recall_change():
    probe = ProbeSet(load_templates()[:4], ["A1", "A2", "B1", "B2"], ["a", "a", "b", "b"])
    found = recognised(probe, fake_tagger(probe, {"B1"}), "person")
    nobody = np.zeros_like(found)
    for run, reference in ((nobody, found), (found, nobody)):
        changes = recall_changes(probe, run, reference, n_boot=100, confidence=0.95, seed=0, min_names=2)
        for key in ("name_recall_ratio_change", "name_recall_difference_change"):
            assert changes[key] is None and changes["ci"][key] is None
            assert "by this run or by the reference" in changes[f"{key}_reason"]
    changes = recall_changes(probe, found, found, n_boot=100, confidence=0.95, seed=0, min_names=2)
    assert changes["name_recall_difference_change"] == 0.0 and changes["ci"]["name_recall_difference_change"]
