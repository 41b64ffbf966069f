"""``summary.json``: the machine-readable result (schema_version 1, see CONTRACT.md)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from auditkit.gates import status_counts
from auditkit.report.format import headline
from auditkit.results import AuditResult, BaselineComparison

SCHEMA_VERSION = 1


def to_summary(result: AuditResult) -> dict[str, Any]:
    summary = {
        "schema_version": SCHEMA_VERSION,
        "audit": result.audit,
        "verdict": result.verdict,
        "verdict_text": headline(result),
        "gate_counts": status_counts(result.gates),
        "seed": result.seed,
        "provenance": asdict(result.provenance),
        "gates": [
            {
                "id": g.id,
                "value": g.value,
                "ci": list(g.ci) if g.ci else None,
                "op": g.op,
                "threshold": g.threshold,
                "status": g.status,
                "source": g.source,
                "on_inconclusive": g.on_inconclusive,
                **({"reason": g.reason} if g.reason else {}),
                **({"left_out": list(g.left_out)} if g.left_out else {}),
                **({"baseline": _baseline(g.baseline)} if g.baseline else {}),
            }
            for g in result.gates
        ],
        "auditors": {name: r.summary() for name, r in result.auditors.items()},
        "notes": list(result.notes),
    }
    return without_nan(summary)


def _baseline(comparison: BaselineComparison) -> dict[str, Any]:
    out = asdict(comparison)
    out["worsening_ci"] = list(comparison.worsening_ci) if comparison.worsening_ci else None
    return {k: v for k, v in out.items() if v is not None or k in ("baseline_value", "worsening")}


def without_nan(value: Any) -> Any:
    """Replace any non-finite float by null plus a ``<key>_reason``; JSON never carries NaN."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                out[key] = None
                out.setdefault(f"{key}_reason", f"not a finite number ({item})")
            else:
                out[key] = without_nan(item)
        return out
    if isinstance(value, (list, tuple)):
        return [None if isinstance(v, float) and not math.isfinite(v) else without_nan(v) for v in value]
    return value


def dumps(result: AuditResult) -> str:
    return json.dumps(to_summary(result), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write(result: AuditResult, path: Path) -> None:
    path.write_text(dumps(result), encoding="utf-8")
