"""``predictions.csv`` and ``attributions.jsonl``: one row per example."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from auditkit.results import AuditResult


def write_predictions(result: AuditResult, path: Path) -> None:
    p = result.predictions
    if p.n_classes > 2:  # multiclass: class names, and one probability column per class
        names = pd.Series(p.classes)
        frame = pd.DataFrame({"id": p.ids, "y_true": names[p.y_true].to_numpy(), "y_pred": names[p.y_pred].to_numpy()})
        for j, name in enumerate(p.classes):
            frame[f"score_{name}"] = p.probabilities[:, j]
    else:
        frame = pd.DataFrame({"id": p.ids, "y_true": p.y_true, "y_pred": p.y_pred, "score": p.scores})
    for feature, groups in result.sensitive.items():
        frame[feature] = groups
    frame.to_csv(path, index=False, float_format="%.17g", lineterminator="\n")


def write_attributions(result: AuditResult, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in result.attributions:
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
