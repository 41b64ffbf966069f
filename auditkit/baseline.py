"""Compare gated metrics with a baseline run without flapping on noise.

A gate regresses only when its metric got worse than the baseline by more than the
gate's ``baseline_tolerance`` *and* the change is significant. With both runs'
``predictions.csv`` the test is a paired bootstrap over the rows the runs share (the
same resamples feed both runs' metric); otherwise each estimate must lie outside the
other's interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.csvcells import unguarded
from auditkit.errors import AuditError
from auditkit.predictions import Predictions
from auditkit.results import AuditResult, BaselineComparison, GateResult
from auditkit.stats.cells import CellTable, Confusion, Y
from auditkit.stats.groups import DISPARITIES, confusion_disparity
from auditkit.stats.intervals import percentile_interval
from auditkit.stats.rates import COUNT_METRICS, performance_metric

BASE_PRED = "y_pred_baseline"
CURRENT_PRED = "y_pred_current"


@dataclass(frozen=True)
class Baseline:
    summary: dict[str, Any]
    predictions: pd.DataFrame | None
    path: Path

    def gate(self, gate_id: str) -> dict[str, Any] | None:
        return next((g for g in self.summary.get("gates", []) if g.get("id") == gate_id), None)


def load_baseline(path: Path) -> Baseline:
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"--baseline {path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuditError(f"--baseline {path}: not a readable summary.json ({exc})") from None
    if not isinstance(summary, dict) or summary.get("schema_version") != 1 or "gates" not in summary:
        raise AuditError(f"--baseline {path}: not an auditkit summary.json with schema_version 1")
    _check_shape(summary, path)
    predictions_path = Path(path).with_name("predictions.csv")
    predictions = None
    if predictions_path.is_file():
        try:
            predictions = unguarded(pd.read_csv(predictions_path, dtype={"id": str}))
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise AuditError(f"--baseline: {predictions_path} is unreadable ({exc})") from None
    return Baseline(summary, predictions, Path(path))


def _check_shape(summary: dict[str, Any], path: Path) -> None:
    """Refuse a summary.json whose fields the comparison reads have the wrong types."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def fail(what: str) -> None:
        raise AuditError(f"--baseline {path}: malformed summary.json: {what}")

    if not isinstance(summary["gates"], list):
        fail(f"'gates' must be a list, not {type(summary['gates']).__name__}")
    for index, gate in enumerate(summary["gates"]):
        if not isinstance(gate, dict):
            fail(f"gates[{index}] must be an object, not {type(gate).__name__}")
        if not isinstance(gate.get("id"), str):
            fail(f"gates[{index}].id must be a string")
        if gate.get("value") is not None and not number(gate["value"]):
            fail(f"gates[{index}].value must be a number or null, not {gate['value']!r:.40}")
        ci = gate.get("ci")
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(number(v) for v in ci)):
            fail(f"gates[{index}].ci must be null or two numbers")
    for key in ("audit",):
        if key in summary and not isinstance(summary[key], str):
            fail(f"'{key}' must be a string")
    provenance = summary.get("provenance", {})
    if not isinstance(provenance, dict):
        fail("'provenance' must be an object")


def identity(summary: dict[str, Any]) -> dict[str, str | None]:
    """What a run audited: its audit name, data file hash and test split hash (None when not recorded)."""
    provenance = summary.get("provenance") or {}
    return {
        "audit": summary.get("audit"),
        "data": provenance.get("data_sha256") if isinstance(provenance.get("data_sha256"), str) else None,
        "split": provenance.get("split_sha256") if isinstance(provenance.get("split_sha256"), str) else None,
    }


def mismatches(baseline: Baseline, current: dict[str, str | None]) -> list[str]:
    """Where the baseline audited something else than this run (name, data or split)."""
    old = identity(baseline.summary)
    out = []
    for key, what in (("audit", "audit name"), ("data", "data file (sha256)"), ("split", "test split (sha256)")):
        if old[key] is not None and current[key] is not None and old[key] != current[key]:
            out.append(f"{what} {_short(old[key])} vs {_short(current[key])}")
    return out


def describe_pair(baseline: Baseline, current: dict[str, str | None]) -> str:
    """One sentence for the report: this run against which baseline run."""
    old = identity(baseline.summary)

    def side(ident: dict[str, str | None]) -> str:
        return f"audit '{ident['audit']}', data {_short(ident['data'])}, split {_short(ident['split'])}"

    return f"this run ({side(current)}) against the baseline {baseline.path} ({side(old)})"


def _short(value: str | None) -> str:
    if value is None:
        return "not recorded"
    return value[:12] if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else repr(value)


def compare_with_baseline(
    result: AuditResult, baseline: Baseline, tolerances: dict[str, float], n_boot: int, seed: int
) -> list[GateResult]:
    paired = _paired_cells(result, baseline)
    rng = np.random.default_rng(seed)
    replicates = paired.replicates(n_boot, rng) if paired is not None else None
    gates = []
    for gate in result.gates:
        comparison = _compare(gate, baseline, tolerances.get(gate.id, 0.0), result, paired, replicates)
        status = "fail" if comparison.status == "regressed" else gate.status
        reason = gate.reason
        if comparison.status == "regressed":
            reason = (
                f"regressed against the baseline by {comparison.worsening:.4g} (tolerance {comparison.tolerance:g})"
            )
        gates.append(replace(gate, status=status, reason=reason, baseline=comparison))
    return gates


def _direction(op: str) -> int:
    """+1 when larger is better (>=, >), -1 when smaller is better."""
    return 1 if op.startswith(">") else -1


def _compare(
    gate: GateResult,
    baseline: Baseline,
    tolerance: float,
    result: AuditResult,
    paired: CellTable | None,
    replicates: np.ndarray | None,
) -> BaselineComparison:
    old = baseline.gate(gate.id)
    if old is None or old.get("value") is None or gate.value is None:
        why = "the baseline has no value for this gate" if gate.value is not None else "no current value"
        return BaselineComparison(
            None if old is None else old.get("value"), None, None, tolerance, "none", "inconclusive", why
        )
    sign = _direction(gate.op)
    worsening = sign * (old["value"] - gate.value)
    if paired is not None and replicates is not None:
        series = _paired_series(gate.id, result, paired, np.vstack([paired.observed(), replicates]))
        if series is not None:
            current, base = series
            diffs = sign * (base - current)
            ci, why = percentile_interval(diffs[1:], 0.95)
            significant = ci is not None and ci[0] > 0
            status = "regressed" if significant and diffs[0] > tolerance else ("ok" if ci else "inconclusive")
            return BaselineComparison(old["value"], float(diffs[0]), ci, tolerance, "paired bootstrap", status, why)
    new_ci, old_ci = gate.ci, old.get("ci")
    if not new_ci and not old_ci:
        return BaselineComparison(
            old["value"],
            worsening,
            None,
            tolerance,
            "intervals",
            "inconclusive",
            "neither run has an interval and no paired predictions are available",
        )
    outside_new = new_ci is None or not (new_ci[0] <= old["value"] <= new_ci[1])
    outside_old = old_ci is None or not (old_ci[0] <= gate.value <= old_ci[1])
    significant = outside_new and outside_old
    status = "regressed" if significant and worsening > tolerance else "ok"
    return BaselineComparison(old["value"], worsening, None, tolerance, "intervals", status)


def _paired_cells(result: AuditResult, baseline: Baseline) -> CellTable | None:
    """Cells over (sensitive features, y, current y_pred, baseline y_pred) on the rows both runs scored."""
    old = baseline.predictions
    if old is None or not {"id", "y_true", "y_pred"} <= set(old.columns):
        return None
    p = result.predictions
    if not isinstance(p, Predictions):  # token classification: one row per word; compare by intervals
        return None
    if p.n_classes > 2:  # the paired metrics are binary; multiclass gates compare intervals
        return None
    current = pd.DataFrame({"id": p.ids.astype(str), Y: p.y_true, CURRENT_PRED: p.y_pred, **result.sensitive})
    merged = current.merge(old[["id", "y_true", "y_pred"]].rename(columns={"y_pred": BASE_PRED}), on="id")
    if merged.empty or (merged["y_true"] != merged[Y]).any():
        return None  # different rows or labels: not the same evaluation set
    return CellTable.from_frame(merged, [*result.sensitive, Y, CURRENT_PRED, BASE_PRED])


def _paired_series(
    gate_id: str, result: AuditResult, cells: CellTable, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The gate's metric for the current and the baseline predictions on each resample, or None."""
    auditor, _, rest = gate_id.partition(".")
    metric, _, slice_part = rest.partition("[")
    slice_name = slice_part.rstrip("]")
    y = cells.keys[Y].to_numpy()
    out = []
    for column in (CURRENT_PRED, BASE_PRED):
        pred = cells.keys[column].to_numpy()
        if auditor == "performance" and metric in COUNT_METRICS and not slice_name:
            out.append(performance_metric(Confusion.by_group(counts, np.zeros(len(y), int), 1, y, pred), metric))
        elif auditor == "fairness" and metric in DISPARITIES and "fairness" in result.auditors:
            fairness = result.auditors["fairness"]
            compared = fairness.disparities.get(slice_name, {}).get("groups_compared", {}).get(metric)
            if not compared or len(compared) < 2:
                return None
            codes, names = cells.group_codes(slice_name.split("*"))
            confusion = Confusion.by_group(counts, codes, len(names), y, pred)
            keep = [names.index(g) for g in compared if g in names]
            out.append(confusion_disparity(confusion, metric, keep, fairness.method))
        else:
            return None
    return out[0], out[1]
