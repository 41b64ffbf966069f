"""Typed results that flow from auditors to gates to writers: pure data, rendered by :mod:`auditkit.report`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from auditkit.predictions import Predictions


@dataclass(frozen=True)
class MetricValue:
    """A gateable number with its interval, or None and the reason it could not be computed."""

    value: float | None
    ci: tuple[float, float] | None = None
    reason: str | None = None
    left_out: tuple[str, ...] = ()  # groups the comparison behind this value did not include
    undecided: bool = False  # the value is shown but may not decide a gate; ``reason`` says why
    # Which way the groups in ``left_out`` could move the value if they were compared: "up" for a
    # largest gap between groups (a max only grows), "down" for a smallest ratio (a min only shrinks).
    # A gate that fails on the compared groups in that direction fails on all of them: it is decided.
    left_out_moves: str | None = None

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("a metric value must be finite; use value=None with a reason")
        if (self.value is None or self.undecided) and not self.reason:
            raise ValueError("a missing or undecided metric value needs a reason")


class AuditorResult(BaseModel):
    """Base of every auditor's result: a JSON-able summary plus gateable metrics.

    Subclasses add typed fields; ``summary()`` is what lands in
    ``summary.json`` under ``auditors.<name>``.
    """

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def metric_values(self) -> dict[str, MetricValue]:
        """Metric ids without the auditor prefix, e.g. ``accuracy`` or ``demographic_parity_ratio[sex]``."""
        return {}

    def attribution_records(self) -> list[dict[str, Any]]:
        """Lines for attributions.jsonl (only the explain auditor has any)."""
        return []

    def probe_records(self) -> list[dict[str, Any]]:
        """Lines for name_probe.jsonl, one per probe mention (only token fairness with name probes has any)."""
        return []

    def documents(self) -> dict[str, Any]:
        """JSON files this result exports beside the report, by file name (mitigation: ``mitigation.json``)."""
        return {}


@dataclass(frozen=True)
class BaselineComparison:
    """How a gated metric moved against the baseline run, and whether that is a significant regression."""

    baseline_value: float | None
    worsening: float | None  # how much worse than the baseline (in the gate's direction); < 0 is better
    worsening_ci: tuple[float, float] | None
    tolerance: float
    method: str  # "paired bootstrap" | "intervals"
    status: str  # ok | regressed | inconclusive
    reason: str | None = None


@dataclass(frozen=True)
class GateResult:
    id: str
    value: float | None
    ci: tuple[float, float] | None
    op: str
    threshold: float
    status: str  # pass | fail | inconclusive (a significant regression against the baseline is a fail)
    source: str
    on_inconclusive: str
    reason: str | None = None
    baseline: BaselineComparison | None = None
    left_out: tuple[str, ...] = ()  # groups the metric's comparison left out (too small)

    @property
    def blocks(self) -> bool:
        """Whether this gate makes the verdict fail."""
        return self.status == "fail" or (self.status == "inconclusive" and self.on_inconclusive == "fail")


@dataclass(frozen=True)
class Provenance:
    config_sha256: str
    data_sha256: str
    model: str
    model_sha256: str
    auditkit_version: str
    started_at: str
    duration_s: float
    versions: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    auditor_seconds: dict[str, float] = field(default_factory=dict)
    split_sha256: str = ""  # of the test rows' ids and labels: which rows were audited


@dataclass
class AuditResult:
    """Everything one run produced; writers render it and compute nothing."""

    audit: str
    description: str
    seed: int
    provenance: Provenance
    gates: list[GateResult]
    auditors: dict[str, AuditorResult]
    predictions: Predictions  # or TokenPredictions (token tasks), CountedPredictions (a streamed audit: no rows)
    sensitive: dict[str, list[str]]  # feature -> group of each evaluated example
    attributions: list[dict[str, Any]] = field(default_factory=list)
    probe_mentions: list[dict[str, Any]] = field(default_factory=list)  # name_probe.jsonl
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "fail" if any(g.blocks for g in self.gates) else "pass"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "fail" else 0
