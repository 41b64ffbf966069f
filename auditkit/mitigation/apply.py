"""``--apply-mitigation FILE``: a committed ``mitigation.json``'s group thresholds applied to new predictions.

Only the post-processing methods travel this way: their fix is a few numbers per group, applied to
any model's scores. A reduction's fix is a set of refitted models, which the file only describes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from auditkit.data import Split
from auditkit.errors import AuditError
from auditkit.mitigation.thresholds import GroupRule, Rule, decide
from auditkit.predictions import Predictions


@dataclass(frozen=True)
class Applied:
    path: Path
    sha256: str
    method: str
    feature: str
    positive_label: str
    seed: int
    data_sha256: str
    rules: dict[str, GroupRule]

    def note(self, data_sha256: str) -> str:
        same = "the same data" if data_sha256 == self.data_sha256 else "other data than it was fitted on"
        return (
            f"Decisions are the audited model's scores thresholded by method '{self.method}' of {self.path.name} "
            f"(sha256 {self.sha256[:12]}, seed {self.seed}, group thresholds by {self.feature}), applied to {same}."
        )


def load_mitigation(path: Path, method: str | None) -> Applied:
    """Read and check ``mitigation.json``; ``method`` names one of its threshold methods (optional if one)."""
    what = f"--apply-mitigation {path}"
    try:
        raw = Path(path).read_bytes()
        document = json.loads(raw)
    except FileNotFoundError:
        raise AuditError(f"{what}: file not found") from None
    except (OSError, ValueError) as exc:
        raise AuditError(f"{what}: not a readable mitigation.json ({type(exc).__name__})") from None
    try:
        if document.get("schema_version") != 1:
            raise ValueError("schema_version is not 1")
        candidates = [m for m in document["methods"] if "groups" in m]
        if method is not None:
            candidates = [m for m in candidates if m["name"] == method]
        if len(candidates) != 1:
            names = ", ".join(m["name"] for m in document["methods"] if "groups" in m) or "none"
            why = f"no threshold method '{method}'" if method else "choose one with --mitigation-method"
            raise AuditError(f"{what}: {why} (threshold methods in the file: {names})")
        chosen = candidates[0]
        rules = {
            str(group): GroupRule(
                float(r["p0"]), Rule(_operator(r["rule0"]["operator"]), float(r["rule0"]["threshold"])),
                float(r["p1"]), Rule(_operator(r["rule1"]["operator"]), float(r["rule1"]["threshold"])),
                float(r.get("p_ignore", 0.0)), float(r.get("constant", 0.0)),
            )  # fmt: skip
            for group, r in chosen["groups"].items()
        }
        return Applied(
            Path(path), hashlib.sha256(raw).hexdigest(), str(chosen["name"]), str(document["sensitive_feature"]),
            str(document["positive_label"]), int(document["seed"]), str(document["data_sha256"]), rules,
        )  # fmt: skip
    except AuditError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AuditError(f"{what}: malformed mitigation.json ({type(exc).__name__}: {exc})") from None


def _operator(value: object) -> str:
    if value not in (">", "<"):
        raise ValueError(f"operator {value!r} is not '>' or '<'")
    return str(value)


def apply_mitigation(applied: Applied, predictions: Predictions, split: Split) -> Predictions:
    """The predictions with their decisions replaced by the file's thresholds on the same scores."""
    if predictions.n_classes != 2:
        raise AuditError(f"--apply-mitigation {applied.path}: group thresholds apply to binary tasks only")
    if str(predictions.classes[1]) != applied.positive_label:
        raise AuditError(
            f"--apply-mitigation {applied.path}: fitted for positive label '{applied.positive_label}', "
            f"the audit's is '{predictions.classes[1]}'"
        )
    if applied.feature not in split.frame.columns:
        raise AuditError(
            f"--apply-mitigation {applied.path}: the data has no column '{applied.feature}' (its thresholds are by it)"
        )
    groups = split.frame[applied.feature].astype(str).to_numpy()
    try:
        decisions = decide(applied.rules, predictions.scores, groups, applied.seed)
    except AuditError as exc:
        raise AuditError(f"--apply-mitigation {applied.path}: {exc}") from None
    return replace(predictions, y_pred=decisions)
