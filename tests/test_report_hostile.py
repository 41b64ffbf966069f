"""Writers against hostile text: control characters in junit.xml, Markdown injection in summary.md,
and gates whose comparison left small groups out, named in every output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from auditkit.auditors.fairness import FairnessResult, slice_summary, worst_slices
from auditkit.config import GateConfig
from auditkit.gates import evaluate_gates
from auditkit.report import junit, markdown, summary
from auditkit.report.html import render
from auditkit.report.sections import build_section
from auditkit.results import AuditResult, Provenance
from auditkit.stats.groups import GroupRules, group_metrics

HOSTILE = "x`<img src=x onerror=alert(1)>"
CONTROLS = "".join(chr(c) for c in range(32)) + "\ufffe\uffff"
SURROGATE = "\ud800"  # only config text can hold one: data files are decoded as UTF-8


def fairness_result(feature: str, groups: list[str], sizes: list[int], small_groups: str) -> FairnessResult:
    rng = np.random.default_rng(0)
    labels = np.repeat(groups, sizes)
    y = rng.integers(0, 2, len(labels))
    pred = rng.integers(0, 2, len(labels))
    rules = GroupRules(min_group_size=30, min_class_size=5, n_boot=200)
    reports = group_metrics(y, pred, None, pd.DataFrame({feature: labels}), [[feature]], rules, rng)
    by_group, disparities = {}, {}
    for name, report in reports.items():
        by_group[name], disparities[name] = slice_summary(report)
    return FairnessResult(
        method=rules.method,
        confidence=0.95,
        n_boot=200,
        min_group_size=30,
        min_class_size=5,
        small_groups=small_groups,
        by_group=by_group,
        disparities=disparities,
        counterfactual={},
        worst_slices=worst_slices(disparities),
    )


def audit_result(feature: str, groups: list[str], sizes: list[int], small_groups="inconclusive", source=""):
    fairness = fairness_result(feature, groups, sizes, small_groups)
    gates = [
        GateConfig(metric=f"fairness.demographic_parity_difference[{feature}]", op="<=", threshold=1.0, source=source),
        GateConfig(metric=f"fairness.demographic_parity_ratio[{feature}]", op=">=", threshold=0.0, source=source),
        GateConfig(metric="fairness.accuracy_difference[nowhere]", op="<=", threshold=1.0),
    ]
    provenance = Provenance("c" * 64, "d" * 64, "model", "e" * 64, "0", "2026-01-01T00:00:00", 1.0)
    return AuditResult(
        audit=f"audit {HOSTILE}",
        description=HOSTILE,
        seed=0,
        provenance=provenance,
        gates=evaluate_gates(gates, {"fairness": fairness}),
        auditors={"fairness": fairness},
        predictions=None,  # type: ignore[arg-type]  # the writers tested here never read them
        sensitive={},
        notes=[f"note {HOSTILE}{CONTROLS}"],
    )


def test_junit_parses_after_every_forbidden_character():
    result = audit_result(f"f{CONTROLS}", [f"a{CONTROLS}", HOSTILE], [60, 60], source=f"policy{CONTROLS}{SURROGATE}")
    suite = ET.fromstring(junit.to_xml(result).encode("utf-8")).find("testsuite")
    names = [case.get("name") for case in suite.iter("testcase")]
    assert len(names) == 3 and all("\\x01" in n for n in names[:2])
    out = suite.find("testcase").find("system-out").text
    assert "\\x1f" in out and "\\ud800" in out and "\\uffff" in out


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


@pytest.mark.parametrize("preset", ["commonmark", "gfm-like"])
def test_summary_md_renders_no_html_from_user_text(preset):
    from markdown_it import MarkdownIt

    hostile = [f"{HOSTILE}*_[a](javascript:x)|`` ` ``<b>", f"g`{HOSTILE}", "<script>alert(1)</script>\\"]
    result = audit_result(f"col{HOSTILE}", [*hostile, "tiny"], [60, 60, 60, 5], source=f"src {HOSTILE}")
    md = MarkdownIt(preset, {"linkify": False, "html": True}).enable("table")  # raw HTML on, as GitHub allows
    rendered = md.render(markdown.to_markdown(result))
    parser = Tags()
    parser.feed(rendered)
    allowed = {"h2", "p", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "strong", "sub", "code"}
    assert rendered.count("<code>") == 2  # only the provenance hashes are code spans
    assert {tag for tag, _ in parser.tags} <= allowed, rendered
    assert all(name == "style" for _, attrs in parser.tags for name, _ in attrs), rendered
    # The hostile text is still there, as text.
    assert "onerror=alert(1)" in rendered and "x`&lt;img" in rendered


def test_gate_on_a_slice_that_left_out_small_groups_is_inconclusive_and_names_them():
    result = audit_result("age", ["young", "middle", "old"], [60, 60, 12])
    gate = result.gates[0]
    assert gate.status == "inconclusive" and gate.left_out == ("old",)
    assert "'old' (12 rows, below min_group_size 30)" in gate.reason and "small_groups: exclude" in gate.reason
    row = json.loads(summary.dumps(result))["gates"][0]
    assert row["left_out"] == ["old"] and row["status"] == "inconclusive"
    line = next(x for x in markdown.to_markdown(result).splitlines() if "demographic\\_parity\\_difference\\[" in x)
    assert "left out as too small\\: 'old' \\(12 rows" in line
    assert "left out as too small: &#39;old&#39;" in render(result)
    case = ET.fromstring(junit.to_xml(result).encode()).find("testsuite").find("testcase")
    assert case.find("skipped") is not None and "'old'" in case.find("skipped").get("message")


def test_small_groups_exclude_gates_on_the_rest_and_still_names_them():
    result = audit_result("age", ["young", "middle", "old"], [60, 60, 12], small_groups="exclude")
    gate = result.gates[0]
    assert gate.status == "pass" and gate.left_out == ("old",) and "'old'" in gate.reason
    complete = audit_result("age", ["young", "old"], [60, 60])
    assert complete.gates[0].status == "pass" and complete.gates[0].left_out == () and complete.gates[0].reason is None


def test_verdict_wording_is_the_same_everywhere():
    from typer.testing import CliRunner  # noqa: F401 - the CLI prints the same headline function

    from auditkit.report.format import headline

    result = audit_result("age", ["young", "middle", "old"], [60, 60, 12])
    statuses = [g.status for g in result.gates]
    assert statuses == ["inconclusive", "inconclusive", "inconclusive"]
    text = headline(result)
    assert text == "PASS (0 passed, 3 inconclusive, not blocking)"
    assert f"Verdict: {text}" in render(result)
    assert text in markdown.to_markdown(result).splitlines()[0]
    assert json.loads(summary.dumps(result))["verdict_text"] == text
    suite = ET.fromstring(junit.to_xml(result).encode()).find("testsuite")
    assert suite.find("properties/property").get("value") == text and suite.get("skipped") == "3"
    complete = audit_result("age", ["young", "old"], [60, 60])
    assert headline(complete) == "PASS (2 passed, 1 inconclusive, not blocking)"


def fairness_section_html(result: AuditResult) -> str:
    html = render(result)
    return html[html.index('id="auditor-fairness"') : html.index('id="provenance"')]


def test_small_groups_are_one_folded_table_and_only_gates_they_touch_get_a_note():
    tiny = [f"tiny{i}" for i in range(12)]
    result = audit_result("age", ["young", "middle", *tiny, HOSTILE], [60, 60, *[5] * 12, 4])
    section = build_section("fairness", result.auditors["fairness"], result.gates)
    (folded,) = [t for t in section.tables if t.collapsed]
    assert folded.collapsed.startswith("13 small groups left out of the comparisons in 1 of 1 slices")
    assert sorted(row[1] for row in folded.rows) == sorted([*tiny, HOSTILE])  # slice, group, rows, left out of, why
    assert folded.rows[0] == ["age", "tiny0", 5, "every disparity", "5 rows, below min_group_size 30"]
    assert len(section.notes) == 2  # the two gates whose comparison left them out; not one per group
    assert all(n.startswith("Gate fairness.demographic_parity_") and "'tiny11' (5 rows" in n for n in section.notes)
    html = fairness_section_html(result)
    assert html.count('<div class="note">') == 2 and html.count('<details class="collapsed">') == 1
    assert "<summary>13 small groups left out" in html and "<img" not in html and "x`&lt;img" in html
    complete = audit_result("age", ["young", "old"], [60, 60])
    html = fairness_section_html(complete)
    assert "<details" not in html and '<div class="note">' not in html


def test_multiclass_small_groups_have_a_class_column_and_accuracy_rows():
    from auditkit.stats.groups import group_metrics_by_class

    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], [80, 80, 7])
    y, pred = rng.integers(0, 3, len(labels)), rng.integers(0, 3, len(labels))
    rules = GroupRules(min_group_size=30, min_class_size=5, n_boot=50)
    frame = pd.DataFrame({"g": labels})
    reports, accuracy = group_metrics_by_class(
        y, pred, np.full((len(y), 3), 1 / 3), ["L", "M", "H"], frame, [["g"]], rules, rng
    )
    by_group, disparities = {}, {}
    for name, report in reports.items():
        by_group[name], disparities[name] = slice_summary(report)
    accuracy_by_group = {
        name: {
            group: {"n": g.n, "ci": {}, "status": g.status, "insufficient": dict(g.insufficient)}
            for group, g in r.groups.items()
        }
        for name, r in accuracy.items()
    }
    fairness = FairnessResult(
        method=rules.method, confidence=0.95, n_boot=50, min_group_size=30, min_class_size=5, by_group=by_group,
        disparities=disparities, counterfactual={}, worst_slices={}, classes=["L", "M", "H"],
        accuracy_by_group=accuracy_by_group, accuracy_disparities={"g": {"ci": {}, "groups_compared": {}}},
    )  # fmt: skip
    (folded,) = [t for t in build_section("fairness", fairness, []).tables if t.collapsed]
    assert folded.columns == ["slice", "class", "group", "rows", "left out of", "why"]
    small = [row[:5] for row in folded.rows if row[2] == "c"]
    assert small == [
        *(["g", cls, "c", 7, "every disparity"] for cls in ("L", "M", "H")),
        ["g", "all classes", "c", 7, "accuracy difference"],
    ]
    assert folded.collapsed.startswith(f"{len({tuple(r[:3]) for r in folded.rows})} small groups left out")
