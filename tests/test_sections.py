"""HTML sections are found by result type through the class hierarchy, and plugins can add their own."""

from __future__ import annotations

from typing import Any

import pytest

from auditkit.auditors.fairness import FairnessResult
from auditkit.auditors.performance import PerformanceResult
from auditkit.auditors.performance_multiclass import MulticlassPerformanceResult
from auditkit.errors import AuditError
from auditkit.report.sections import base
from auditkit.report.sections.base import Section, builder_for, generic_section, section_builder
from auditkit.report.sections.fairness import fairness_section
from auditkit.report.sections.performance import multiclass_performance_section, performance_section
from auditkit.results import AuditorResult


class Bias(AuditorResult):
    score: float = 0.5


def test_builders_are_keyed_by_result_type():
    assert builder_for(PerformanceResult) is performance_section
    assert builder_for(MulticlassPerformanceResult) is multiclass_performance_section
    assert builder_for(FairnessResult) is fairness_section

    class RenamedFairness(FairnessResult):  # a subclass keeps its parent's section, whatever the auditor's name
        pass

    assert builder_for(RenamedFairness) is fairness_section
    assert builder_for(Bias) is generic_section
    assert base.build_section("bias", Bias(), []).tables[0].rows == [["score", "0.5"]]


def test_a_plugin_registers_its_own_section(monkeypatch):
    class Custom(AuditorResult):
        pass

    def register() -> Any:
        @section_builder(Custom)
        def custom(name: str, result: AuditorResult, gates: list) -> Section:
            return Section(key=name, title="Custom plugin section")

    class EntryPoint:
        name = "custom"
        load = staticmethod(register)

    monkeypatch.setattr(base, "_plugins_loaded", False)
    monkeypatch.setattr(base, "entry_points", lambda group: [EntryPoint()] if group == base.SECTION_GROUP else [])
    monkeypatch.setattr(base, "BUILDERS", dict(base.BUILDERS))
    assert base.build_section("custom", Custom(), []).title == "Custom plugin section"


def test_a_broken_section_plugin_is_named(monkeypatch):
    class EntryPoint:
        name = "broken"

        @staticmethod
        def load() -> Any:
            raise ImportError("no module named nowhere")

    monkeypatch.setattr(base, "_plugins_loaded", False)
    monkeypatch.setattr(base, "entry_points", lambda group: [EntryPoint()])
    with pytest.raises(AuditError, match="plugin 'broken' in entry-point group auditkit.sections"):
        builder_for(Bias)
    monkeypatch.setattr(base, "_plugins_loaded", True)
