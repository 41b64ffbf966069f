"""Turn metric values into gate verdicts.

With an interval, a gate passes only when the whole interval meets the threshold, fails
only when none of it does, and is ``inconclusive`` when the interval straddles it; a
missing value is always inconclusive, never a silent pass.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

from auditkit.config import GateConfig
from auditkit.results import AuditorResult, GateResult, MetricValue

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def evaluate_gates(gates: Sequence[GateConfig], results: Mapping[str, AuditorResult]) -> list[GateResult]:
    values: dict[str, MetricValue] = {}
    for auditor, result in results.items():
        values.update({f"{auditor}.{key}": value for key, value in result.metric_values().items()})
    return [evaluate_gate(gate, values.get(gate.metric)) for gate in gates]


def evaluate_gate(gate: GateConfig, metric: MetricValue | None) -> GateResult:
    if metric is None:
        metric = MetricValue(None, reason="the auditor did not run or produced no such metric")
    status, reason = _status(gate, metric)
    return GateResult(
        id=gate.metric,
        value=metric.value,
        ci=metric.ci,
        op=gate.op,
        threshold=gate.threshold,
        status=status,
        source=gate.source,
        on_inconclusive=gate.on_inconclusive,
        reason=reason,
    )


def _status(gate: GateConfig, metric: MetricValue) -> tuple[str, str | None]:
    if metric.value is None:
        return "inconclusive", metric.reason
    ok = OPS[gate.op]
    if metric.ci is None:
        return ("pass" if ok(metric.value, gate.threshold) else "fail"), None
    low, high = metric.ci
    if ok(low, gate.threshold) and ok(high, gate.threshold):
        return "pass", None
    if not ok(low, gate.threshold) and not ok(high, gate.threshold):
        return "fail", None
    return "inconclusive", f"the 95% interval [{low:.4g}, {high:.4g}] straddles the threshold {gate.threshold:g}"
