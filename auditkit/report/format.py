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
    return text
