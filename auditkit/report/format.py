"""Number and gate formatting shared by the Markdown, JUnit and HTML writers."""

from __future__ import annotations

import re

from auditkit.gates import status_counts
from auditkit.results import AuditResult, GateResult

# Characters XML 1.0 forbids (C0 controls but tab, LF, CR; U+FFFE, U+FFFF; lone surrogates).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def visible_controls(text: str) -> str:
    """Untrusted text with every character XML 1.0 forbids written as a visible ``\\xNN`` escape."""
    return _NOT_XML.sub(lambda m: _escape(ord(m.group())), text)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def headline(result: AuditResult) -> str:
    """The verdict in words, the same in the CLI, HTML, Markdown and JUnit:
    ``PASS (5 passed, 4 inconclusive, not blocking)``."""
    counts = status_counts(result.gates)
    if not result.gates:
        return f"{result.verdict.upper()} (no gates)"
    parts = [f"{counts['passed']} passed"]
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    n, blocking = counts["inconclusive"], counts["inconclusive_blocking"]
    if n:
        parts.append(
            f"{n} inconclusive, "
            + ("not blocking" if blocking == 0 else "blocking" if blocking == n else f"{blocking} blocking")
        )
    return f"{result.verdict.upper()} ({', '.join(parts)})"


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
