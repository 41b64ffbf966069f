"""HTML section of the privacy auditor on a token classifier: DP runs with accounting and entity F1,
the name probe per run with its change from the non-private reference (the fairness cost of
privacy), and membership inference. It formats; it computes nothing."""

from __future__ import annotations

from typing import Any

from auditkit.ner.privacy_audit import TokenPrivacyResult
from auditkit.report.format import interval, number
from auditkit.report.sections.base import Section, Table, section_builder
from auditkit.report.sections.ner import gate_cell
from auditkit.results import AuditorResult, GateResult


def _label(run: dict[str, Any]) -> str:
    return run.get("tag") or "non-private"


def _auc(attack: dict[str, Any] | None) -> str:
    return number(attack["auc"]) if attack else ""


def _runs_table(runs: list[dict[str, Any]]) -> Table:
    rows = []
    for run in runs:
        m, mia, eps = run["metrics"], run["mia"], run.get("epsilons", {})
        rows.append(
            [
                _label(run),
                number(run["epsilon"]),
                number(eps.get("rdp")),
                number(eps.get("prv")),
                number(run["noise_multiplier"]),
                number(run.get("max_grad_norm")),
                number(run.get("clipped_share")),
                number(run["sample_rate"]),
                run["steps"],
                number(run.get("learning_rate")),
                run["epochs"],
                number(run.get("validation_score")),
                number(m["entity_f1"]),
                interval(m["ci"].get("f1")),
                _auc(mia),
                _auc(run.get("lira")),
                number(mia["epsilon_lower_bound"]) if mia else "",
                number(run["seconds"]),
                run.get("degenerate") or run.get("attack_reason") or "",
            ]
        )
    return Table(
        [
            "run",
            "accounted ε",
            "ε (RDP)",
            "ε (PRV)",
            "noise",
            "clip norm",
            "clipped share",
            "sample rate",
            "steps",
            "learning rate",
            "epochs",
            "validation entity F1",
            "entity F1",
            "95% CI",
            "MIA AUC",
            "LiRA AUC",
            "ε lower bound (loss)",
            "seconds",
            "degenerate",
        ],
        rows,
        caption="DP runs and the non-private reference: learning rate and epochs chosen on the validation "
        "carve-out; a sentence is one example",
    )


def _probe_tables(runs: list[dict[str, Any]], gate_of: dict[str, GateResult]) -> list[Table]:
    """Per run: each group's name recall and its change from the reference; the groups' ratio and difference."""
    recall_rows, disparity_rows = [], []
    for run in runs:
        for probe, report in run.get("name_probe", {}).items():
            change = run.get("name_recall_change", {}).get(probe, {})
            for group, r in report["by_group"].items():
                c = change.get("by_group", {}).get(group, {})
                recall_rows.append(
                    [
                        _label(run),
                        probe,
                        group,
                        r["n_names"],
                        r["recall"],
                        interval(r["ci"]["recall"]),
                        c.get("recall_change") if change else "",
                        interval(c.get("ci", {}).get("recall_change")),
                        c.get("recall_change_reason", ""),
                    ]
                )
            d = report["disparity"]
            for key in ("name_recall_ratio", "name_recall_difference"):
                where = f"[{probe}@{_label(run)}]"
                disparity_rows.append(
                    [
                        _label(run),
                        probe,
                        key,
                        d.get(key),
                        interval(d["ci"].get(key)),
                        gate_cell(gate_of, f"privacy.{key}{where}"),
                        change.get(f"{key}_change") if change else "",
                        interval(change.get("ci", {}).get(f"{key}_change")),
                        gate_cell(gate_of, f"privacy.{key}_change{where}"),
                        d.get(f"{key}_reason") or change.get(f"{key}_change_reason", ""),
                    ]
                )
    if not recall_rows:
        return []
    return [
        Table(
            ["run", "probe", "group", "names", "recall", "95% CI", "change from reference", "95% CI", "note"],
            recall_rows,
            caption="Name probe per run: the share of name mentions tagged exactly as a person "
            "(the fairness auditor's probe; changes paired on the same names)",
        ),
        Table(
            ["run", "probe", "measure", "value", "95% CI", "gate", "change from reference", "95% CI", "gate", "note"],
            disparity_rows,
            caption="Fairness cost of privacy: lowest / highest group recall and their difference per run",
        ),
    ]


@section_builder(TokenPrivacyResult)
def token_privacy_section(name: str, result: AuditorResult, gates: list[GateResult]) -> Section:
    s = result.summary()
    runs = [*s["runs"], s["non_private"]]
    gate_of = {g.id: g for g in gates}
    audited = s["audited_model"]["mia"]
    return Section(
        key=name,
        title="Privacy (entities)",
        intro=f"Trained: {s['trained']}; delta {number(s['delta'])}; {s.get('n_fit', 0)} sentences to fit, "
        f"{s.get('n_validation', 0)} held out to choose each run's learning rate and epochs "
        f"({s.get('validation', 'validation')}). A sentence is one example. "
        "A run marked degenerate learned no entities, so nothing derived from it is a finding.",
        tables=[
            _runs_table(runs),
            *_probe_tables(runs, gate_of),
            Table(
                ["model", "MIA AUC", "ε lower bound", "members", "non-members"],
                [
                    [
                        "audited",
                        number(audited["auc"]),
                        number(audited["epsilon_lower_bound"]),
                        audited["n_members"],
                        audited["n_nonmembers"],
                    ]
                ],
                caption="Sentence-level loss-threshold membership inference on the audited model",
            ),
        ],
        notes=[f"{_label(run)}: {flag}" for run in runs for flag in run.get("flags", [])],
    )
