"""``predictions.csv`` and the JSON-lines files (``attributions.jsonl``, ``entities.jsonl``, ``name_probe.jsonl``).

Text cells of the CSV that could start a spreadsheet formula get a leading ``'`` (``auditkit.csvcells``).

The JSON-lines files carry dataset and user text (words, names) through ``json.dumps``, which escapes
every quote, backslash and line break, so no value can end its line or field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from auditkit.csvcells import guarded
from auditkit.ner.predictions import TokenPredictions
from auditkit.results import AuditResult
from auditkit.streaming.counts import CountedPredictions


def write_predictions(result: AuditResult, path: Path) -> None:
    """One row per example; a streamed audit writes no file (its rows are the Parquet data itself and
    were never loaded; the run's notes say so and the output marker lists the files written)."""
    p = result.predictions
    if isinstance(p, CountedPredictions):
        return
    if isinstance(p, TokenPredictions):  # one row per word
        _write_csv(pd.DataFrame(p.rows(result.sensitive)), path)
        return
    if p.n_classes > 2:  # multiclass: class names, and one probability column per class
        names = pd.Series(p.classes)
        frame = pd.DataFrame({"id": p.ids, "y_true": names[p.y_true].to_numpy(), "y_pred": names[p.y_pred].to_numpy()})
        for j, name in enumerate(p.classes):
            frame[f"score_{name}"] = p.probabilities[:, j]
    else:
        frame = pd.DataFrame({"id": p.ids, "y_true": p.y_true, "y_pred": p.y_pred, "score": p.scores})
    for feature, groups in result.sensitive.items():
        frame[feature] = groups
    _write_csv(frame, path)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Numbers in full precision; text cells guarded against spreadsheet formulas (see ``csvcells``)."""
    guarded(frame).to_csv(path, index=False, float_format="%.17g", lineterminator="\n")


def write_attributions(result: AuditResult, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in result.attributions:
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def write_name_probe(result: AuditResult, path: Path) -> None:
    """``name_probe.jsonl``: one line per (probe, name, template) mention; no file when no probe ran, so
    the output marker lists it only for token audits with ``fairness.name_probes``."""
    if not result.probe_mentions:
        return
    with open(path, "w", encoding="utf-8") as handle:
        for record in result.probe_mentions:
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def write_entities(result: AuditResult, path: Path) -> None:
    """``entities.jsonl`` for token classification: gold and predicted spans per sentence (others: no file)."""
    if not isinstance(result.predictions, TokenPredictions):
        return
    with open(path, "w", encoding="utf-8") as handle:
        for record in result.predictions.entity_records():
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def write_mitigation(result: AuditResult, path: Path) -> None:
    """``mitigation.json``: the fitted fixes, when the mitigation auditor ran (else no file)."""
    documents = [r.documents()[path.name] for r in result.auditors.values() if path.name in r.documents()]
    if documents:
        path.write_text(json.dumps(documents[0], indent=2, ensure_ascii=False, allow_nan=False) + "\n", "utf-8")
