from __future__ import annotations

import pytest

from auditkit.config import GateConfig
from auditkit.gates import evaluate_gate
from auditkit.results import MetricValue


def gate(op=">=", threshold=0.8, on_inconclusive="warn"):
    return GateConfig(
        metric="fairness.demographic_parity_ratio[sex]", op=op, threshold=threshold, on_inconclusive=on_inconclusive
    )


@pytest.mark.parametrize(
    ("op", "value", "ci", "status"),
    [
        (">=", 0.9, None, "pass"),
        (">=", 0.7, None, "fail"),
        (">=", 0.8, None, "pass"),
        (">", 0.8, None, "fail"),
        ("<=", 0.7, None, "pass"),
        ("<", 0.9, None, "fail"),
        (">=", 0.9, (0.85, 0.95), "pass"),
        (">=", 0.7, (0.6, 0.75), "fail"),
        (">=", 0.85, (0.75, 0.95), "inconclusive"),
        ("<=", 0.85, (0.75, 0.95), "inconclusive"),
        ("<=", 0.7, (0.6, 0.79), "pass"),
    ],
)
def test_status(op, value, ci, status):
    assert evaluate_gate(gate(op), MetricValue(value, ci)).status == status


def test_missing_value_is_inconclusive_with_reason_and_can_block():
    missing = MetricValue(None, reason="group too small")
    warn = evaluate_gate(gate(), missing)
    assert warn.status == "inconclusive" and warn.reason == "group too small" and not warn.blocks
    assert evaluate_gate(gate(on_inconclusive="fail"), missing).blocks


def test_unproduced_metric_is_inconclusive():
    result = evaluate_gate(gate(), None)
    assert result.status == "inconclusive" and "no such metric" in result.reason


def test_nan_cannot_become_a_metric():
    with pytest.raises(ValueError):
        MetricValue(float("nan"))
    with pytest.raises(ValueError):
        MetricValue(None)


@pytest.mark.parametrize(("op", "value", "ci"), [("<=", 0.0145, (0.018, 0.289)), (">=", 0.79, (0.81, 0.9))])
def test_verdict_never_contradicts_its_estimate(op, value, ci):
    # Seen in the wild: a largest-difference estimate under the threshold with an interval above it.
    result = evaluate_gate(gate(op, threshold=0.016 if op == "<=" else 0.8), MetricValue(value, ci))
    assert result.status == "inconclusive"
    assert "estimate" in result.reason and "other side" in result.reason


def test_undecided_value_is_inconclusive_and_names_left_out_groups():
    metric = MetricValue(0.9, (0.85, 0.95), reason="groups left out", left_out=("f*young",), undecided=True)
    result = evaluate_gate(gate(), metric)
    assert result.status == "inconclusive" and result.reason == "groups left out"
    assert result.left_out == ("f*young",)
    with pytest.raises(ValueError):
        MetricValue(0.9, undecided=True)


@pytest.mark.parametrize(
    ("op", "threshold", "ci", "moves", "status"),
    [
        ("<=", 0.2, (0.21, 0.57), "up", "fail"),  # a largest gap failing on the compared groups can only grow
        ("<=", 0.6, (0.21, 0.57), "up", "inconclusive"),  # a pass on a subset: the left-out groups could raise it
        (">=", 0.8, (0.40, 0.70), "down", "fail"),  # a smallest ratio failing on a subset can only shrink
        (">=", 0.3, (0.40, 0.70), "down", "inconclusive"),
        (">=", 0.8, (0.40, 0.70), "up", "inconclusive"),  # failing low, but more groups could raise it
        ("<=", 0.2, (0.21, 0.57), None, "inconclusive"),  # against the overall rate: either way
    ],
)
def test_a_disparity_over_some_groups_fails_when_more_groups_could_only_worsen_it(op, threshold, ci, moves, status):
    from auditkit.config import GateConfig
    from auditkit.gates import evaluate_gate
    from auditkit.results import MetricValue

    value = MetricValue(sum(ci) / 2, ci, "compares 4 of 6 groups", ("x", "y"), True, moves)
    gate = GateConfig(metric="fairness.equalized_odds_difference[race]", op=op, threshold=threshold)
    result = evaluate_gate(gate, value)
    assert result.status == status, result.reason
    assert result.left_out == ("x", "y")
    if status == "fail":
        assert "could only" in result.reason and "x, y" in result.reason
