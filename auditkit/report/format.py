"""Number and gate formatting shared by the Markdown, JUnit and HTML writers."""

from __future__ import annotations

from auditkit.results import GateResult


def number(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def interval(ci: tuple[float, float] | list[float] | None) -> str:
    return f"[{number(ci[0])}, {number(ci[1])}]" if ci else ""


def describe_gate(gate: GateResult) -> str:
    """One sentence: value, interval, rule, verdict, and why when inconclusive."""
    ci = f" (95% CI {interval(gate.ci)})" if gate.ci else ""
    text = f"{gate.id} = {number(gate.value)}{ci}; rule {gate.op} {gate.threshold:g}: {gate.status}"
    if gate.source:
        text += f" [{gate.source}]"
    if gate.reason:
        text += f" ({gate.reason})"
    if gate.baseline is not None:
        text += f"; baseline: {describe_baseline(gate)}"
    return text


def describe_baseline(gate: GateResult) -> str:
    """Short 'compared with baseline' cell: baseline value, change, verdict."""
    b = gate.baseline
    if b is None:
        return ""
    if b.worsening is None:
        return f"n/a ({b.reason})" if b.reason else "n/a"
    direction = "worse" if b.worsening > 0 else "better"
    ci = f", 95% CI {interval(b.worsening_ci)}" if b.worsening_ci else ""
    return f"was {number(b.baseline_value)}; {number(abs(b.worsening))} {direction}{ci} ({b.method}): {b.status}"
