"""A token-classification audit through the CLI: every contract file, entity F1 equal to seqeval
recomputed from entities.jsonl, per-word predictions.csv, the build cache, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from auditkit.ner.tags import tags_from_spans
from tests.conftest import run_cli, write_config
from tests.ner_support import GROUP_A, GROUP_B, make_sentences, make_tiny_token_bert, vocabulary_texts, write_jsonl

LABELS = ["O", "B-location", "I-location", "B-person", "I-person"]


def ner_config(data: str, model: str, **extra) -> dict:
    config = {
        "name": "tiny_ner",
        "seed": 0,
        "data": {
            "task": "token-classification",
            "path": data,
            "id_column": "sid",
            "sensitive_features": ["origin"],
            "split": {"test_size": 0.3},
        },
        "model": {
            "adapter": "hf-token",
            "path": model,
            "max_length": 64,
            "batch_size": 32,
            "build": {"base": "base", "epochs": 6, "learning_rate": 3e-3, "batch_size": 16},
        },
        "auditors": {
            "performance": {"n_boot": 200},
            "fairness": {
                "n_boot": 200,
                "min_group_size": 20,
                "name_probes": {"origin": {"names": "names.csv", "group_column": "origin", "min_names": 10}},
                "counterfactual": {"names": {"pairs": [[GROUP_A[0], GROUP_B[0]]]}},
            },
            "explain": {"n_examples": 8},
            "privacy": {
                "epsilons": [3.0],
                "epochs": 2,
                "batch_size": 32,
                "learning_rate": 0.01,
                "n_boot": 100,
                "run_kind": "probe",  # the cheap kind; the others are tested in test_ner_privacy
                "lira_shadows": 0,
            },
        },
        "gates": [
            {"metric": "performance.entity_f1", "op": ">=", "threshold": 0.0, "source": "smoke"},
            {"metric": "performance.entity_f1[type=person]", "op": ">=", "threshold": 0.0, "source": "smoke"},
            {"metric": "fairness.name_recall_ratio[origin]", "op": ">=", "threshold": 0.8, "source": "four-fifths"},
        ],
    }
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def ner_workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ner_e2e")
    make_tiny_token_bert(folder / "base", vocabulary_texts(), LABELS)
    write_jsonl(folder / "data.jsonl", make_sentences(240, seed=0, relabel=set(GROUP_B)))
    rows = "".join(f"{a},a\n{b},b\n" for a, b in zip(GROUP_A, GROUP_B, strict=True))
    (folder / "names.csv").write_text("name,origin\n" + rows, encoding="utf-8")
    write_config(folder, ner_config("data.jsonl", "model"))
    return folder


@pytest.fixture(scope="module")
def ran(ner_workspace):
    result = run_cli("run", "audit.yaml", "--out", "out", "--debug", cwd=ner_workspace)
    return ner_workspace, result


def test_run_writes_every_contract_file_and_fails_the_probe_gate(ran):
    folder, result = ran
    assert result.returncode == 1, result.stderr
    out = folder / "out"
    for name in (
        "report.html",
        "summary.json",
        "junit.xml",
        "summary.md",
        "predictions.csv",
        "attributions.jsonl",
        "entities.jsonl",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    gates = {g["id"]: g for g in summary["gates"]}
    assert gates["fairness.name_recall_ratio[origin]"]["status"] == "fail"
    assert summary["auditors"]["fairness"]["name_probe"]["origin"]["by_group"]["b"]["recall"] < 0.2
    assert (folder / "model" / "auditkit-build.json").is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Name probe" in html and "Per entity type" in html


def test_entity_f1_equals_seqeval_recomputed_from_entities_jsonl(ran):
    folder, _ = ran
    summary = json.loads((folder / "out" / "summary.json").read_text(encoding="utf-8"))
    lines = [json.loads(line) for line in (folder / "out" / "entities.jsonl").read_text(encoding="utf-8").splitlines()]
    gold = [tags_from_spans(len(r["tokens"]), [tuple(s) for s in r["gold"]]) for r in lines]
    pred = [tags_from_spans(len(r["tokens"]), [tuple(s) for s in r["pred"]]) for r in lines]
    expected = f1_score(gold, pred, mode="strict", scheme=IOB2)
    assert summary["auditors"]["performance"]["metrics"]["f1"] == pytest.approx(expected, abs=1e-12)
    assert len(lines) == summary["auditors"]["performance"]["metrics"]["n_sentences"] == 72


def test_name_probe_jsonl_has_every_mention_and_recomputes_the_recall_per_group(ran):
    folder, _ = ran
    out = folder / "out"
    assert "name_probe.jsonl" in json.loads((out / ".auditkit-output").read_text(encoding="utf-8"))["files"]
    probe = json.loads((out / "summary.json").read_text(encoding="utf-8"))["auditors"]["fairness"]["name_probe"]
    rows = [json.loads(line) for line in (out / "name_probe.jsonl").read_text(encoding="utf-8").splitlines()]
    n_names, n_templates = 2 * len(GROUP_A), probe["origin"]["n_templates"]
    assert len(rows) == n_names * n_templates
    assert len({(r["probe"], r["name"], r["template_index"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["tokens"][r["slot"]] == r["name"] and r["template"].split()[r["slot"]] == "{name}"
        assert r["recognised"] == ([r["slot"], r["slot"] + 1, "person"] in r["pred"])
    for group, report in probe["origin"]["by_group"].items():
        per_name: dict[str, list[bool]] = {}
        for r in rows:
            if r["group"] == group:
                per_name.setdefault(r["name"], []).append(r["recognised"])
        assert sum(len(v) for v in per_name.values()) == report["n_mentions"]
        assert np.mean([np.mean(v) for v in per_name.values()]) == report["recall"]  # exactly: the same means


def test_predictions_csv_has_one_row_per_word(ran):
    folder, _ = ran
    with open(folder / "out" / "predictions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "position", "token", "y_true", "y_pred", "score", "origin"]
    lines = (folder / "out" / "entities.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == sum(len(json.loads(line)["tokens"]) for line in lines)
    assert all(0.0 < float(r["score"]) <= 1.0 for r in rows)


def test_second_run_reuses_the_built_model(ran):
    folder, _ = ran
    marker = (folder / "model" / "auditkit-build.json").stat().st_mtime
    result = run_cli("run", "audit.yaml", "--out", "out2", "--only", "performance", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "model" / "auditkit-build.json").stat().st_mtime == marker


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            {"gates": [{"metric": "performance.entity_f1[type=persn]", "op": ">=", "threshold": 0.1}]},
            "did you mean 'performance.entity_f1[type=person]'",
        ),
        ({"data": {"task": "token-classification", "path": "data.jsonl", "positive_label": "x"}}, "positive_label"),
        (
            {
                "data": {
                    "task": "binary",
                    "path": "data.jsonl",
                    "label": "tags",
                    "positive_label": "a",
                    "negative_label": "b",
                }
            },
            "data.task token-classification",
        ),
    ],
)
def test_config_mistakes_are_one_line(ner_workspace, change, needle):
    config = ner_config("data.jsonl", "model")
    config.update(change)
    write_config(ner_workspace, config, "bad.yaml")
    result = run_cli("validate", "bad.yaml", cwd=ner_workspace)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr


def test_bad_tag_in_the_data_names_file_and_line(ner_workspace):
    bad = ner_workspace / "bad.jsonl"
    bad.write_text(
        '{"sid": "x", "tokens": ["a"], "tags": ["O"]}\n{"sid": "y", "tokens": ["b"], "tags": ["Q-PER"]}\n',
        encoding="utf-8",
    )
    config = ner_config("bad.jsonl", "model")
    write_config(ner_workspace, config, "bad.yaml")
    result = run_cli("validate", "bad.yaml", cwd=ner_workspace)
    assert result.returncode == 2 and "bad.jsonl:2 (word 1): tag 'Q-PER'" in result.stderr


def test_attributions_explain_one_word_tag_and_are_complete(ran):
    folder, _ = ran
    summary = json.loads((folder / "out" / "summary.json").read_text(encoding="utf-8"))
    explain = summary["auditors"]["explain"]
    assert explain["n_examples"] == 8
    assert explain["relative_delta"]["share_above_tolerance"] <= 0.02
    lines = [json.loads(x) for x in (folder / "out" / "attributions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 8
    for line in lines:  # the tag may be O: a gold entity the model missed is explained at the tag it chose
        assert line["tag"] == line["target"]
        assert 0 <= line["position"] < len(line["tokens"])
        assert line["why"] in ("predicted", "missed") and (line["predicted"] != "O" or line["gold"] != "O")
    assert any(line["tag"] != "O" for line in lines)


def test_privacy_runs_are_accounted_and_attacked(ran):
    from opacus.accountants import RDPAccountant

    folder, _ = ran
    privacy = json.loads((folder / "out" / "summary.json").read_text(encoding="utf-8"))["auditors"]["privacy"]
    (run,) = privacy["runs"]
    accountant = RDPAccountant()
    accountant.history = [(run["noise_multiplier"], run["sample_rate"], run["steps"])]
    assert run["epsilon"] == pytest.approx(accountant.get_epsilon(privacy["delta"]), rel=1e-9)
    assert run["epsilon"] <= 3.0 + 1e-6
    assert 0.0 <= privacy["audited_model"]["mia"]["auc"] <= 1.0
    assert privacy["non_private"]["metrics"]["entity_f1"] is not None
    # the fairness auditor's probe, tagged by every run; the change is from the reference (null only with why)
    assert set(run["by_group"]) == set(privacy["non_private"]["by_group"]) == {"origin"}
    change = run["name_recall_change"]["origin"]
    assert change["name_recall_ratio_change"] is not None or change["name_recall_ratio_change_reason"]
    assert "Name probe per run" in (folder / "out" / "report.html").read_text(encoding="utf-8")


def test_baseline_comparison_of_token_audits_uses_intervals(ran):
    folder, _ = ran
    result = run_cli(
        "run", "audit.yaml", "--out", "out3", "--only", "performance", "--baseline", "out/summary.json", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    gates = json.loads((folder / "out3" / "summary.json").read_text(encoding="utf-8"))["gates"]
    assert {g["baseline"]["method"] for g in gates} <= {"intervals", "none"}
