"""Turn metric values into gate verdicts.

With an interval, a gate passes only when the whole interval meets the threshold, fails
only when none of it does, and is ``inconclusive`` when the interval straddles it; a
missing value is always inconclusive, never a silent pass. A verdict never contradicts its own
estimate: an estimate on one side with its whole interval on the other is inconclusive, with why.
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
        left_out=metric.left_out,
    )


def status_counts(gates: Sequence[GateResult]) -> dict[str, int]:
    """How many gates passed, failed and were inconclusive (blocking or not): the verdict's headline."""
    inconclusive = [g for g in gates if g.status == "inconclusive"]
    return {
        "passed": sum(g.status == "pass" for g in gates),
        "failed": sum(g.status == "fail" for g in gates),
        "inconclusive": len(inconclusive),
        "inconclusive_blocking": sum(g.blocks for g in inconclusive),
    }


def _status(gate: GateConfig, metric: MetricValue) -> tuple[str, str | None]:
    if metric.value is None:
        return "inconclusive", metric.reason
    if metric.undecided:
        return _over_compared_groups(gate, metric)
    return _decided(gate, metric)


def _over_compared_groups(gate: GateConfig, metric: MetricValue) -> tuple[str, str | None]:
    """A value over the groups compared, some left out: a largest gap can only grow and a smallest ratio
    only shrink when groups are added, so a gate failing in that direction fails on every group; a pass
    (or a fail the other way) over a subset is uncertain."""
    status, reason = _decided(gate, metric)
    moves = metric.left_out_moves
    worse_is = "up" if gate.op in ("<=", "<") else "down"  # the direction that fails this gate
    if status == "fail" and moves == worse_is:
        could = "raise" if moves == "up" else "lower"
        return "fail", (
            f"fails on the groups compared; the {len(metric.left_out)} left out ({', '.join(metric.left_out)}) "
            f"could only {could} it further" + (f"; {reason}" if reason else "")
        )
    if moves is None:
        return "inconclusive", metric.reason
    could = "raise" if moves == "up" else "lower"
    return "inconclusive", f"{status} on the groups compared, but the groups left out could {could} it; " + (
        metric.reason or ""
    )


def _decided(gate: GateConfig, metric: MetricValue) -> tuple[str, str | None]:
    assert metric.value is not None
    ok = OPS[gate.op]
    if metric.ci is None:
        return ("pass" if ok(metric.value, gate.threshold) else "fail"), metric.reason
    low, high = metric.ci
    estimate = "meets" if ok(metric.value, gate.threshold) else "misses"
    if ok(low, gate.threshold) and ok(high, gate.threshold):
        status = "pass"
    elif not ok(low, gate.threshold) and not ok(high, gate.threshold):
        status = "fail"
    else:
        return "inconclusive", f"the 95% interval [{low:.4g}, {high:.4g}] straddles the threshold {gate.threshold:g}"
    if (status == "pass") != (estimate == "meets"):
        return "inconclusive", (
            f"the estimate {metric.value:.4g} {estimate} the threshold {gate.threshold:g} but its 95% interval "
            f"[{low:.4g}, {high:.4g}] lies on the other side" + (f" ({metric.reason})" if metric.reason else "")
        )
    return status, metric.reason
