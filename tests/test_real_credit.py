"""End to end on the real German credit data; the MiniLM test fine-tunes the real pretrained model."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT, run_cli


def shipped_config(tmp_path, name: str, auditors: dict | None = None, **build) -> str:
    config = yaml.safe_load((ROOT / "audits" / name).read_text())
    config["data"]["path"] = str(ROOT / "audits" / config["data"]["path"])
    config["model"]["path"] = str(tmp_path / "model")
    config["model"]["build"].update(build)
    for auditor, changes in (auditors or {}).items():
        config["auditors"][auditor].update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


@pytest.mark.slow
def test_credit_audit_on_the_real_minilm(tmp_path):
    # Shorter than the demo (top 2 layers, 2 epochs, 8 explanations, one DP run) keeps CI within budget.
    smaller = {"explain": {"n_examples": 8}, "privacy": {"epsilons": [8.0], "epochs": 3}, "fairness": {"n_boot": 200}}
    config = shipped_config(tmp_path, "credit_risk.yaml", smaller, epochs=2, train_top_layers=2, learning_rate=3e-4)
    out = tmp_path / "out"
    proc = run_cli("run", config, "--out", str(out), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    metrics = summary["auditors"]["performance"]["metrics"]
    assert metrics["n"] == 300 and metrics["n_positive"] == 210
    assert metrics["roc_auc"] > 0.6  # learnt from the applicant descriptions, not chance
    assert metrics["n_truncated"] == 0
    built = json.loads((tmp_path / "model" / "auditkit-build.json").read_text())
    assert built["train_rows"] == 700
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert summary["provenance"]["data_sha256"] == built["data_sha256"]
    explain = summary["auditors"]["explain"]
    assert explain["n_examples"] == 8 and explain["relative_delta"]["share_above_tolerance"] <= 0.125
    assert len((out / "attributions.jsonl").read_text().splitlines()) == 8
    (run,) = summary["auditors"]["privacy"]["runs"]
    assert run["epsilon"] == pytest.approx(8.0, rel=0.02) and not run["flags"]  # not degenerate either
    assert summary["auditors"]["privacy"]["non_private"]["degenerate"] is None
    assert set(summary["auditors"]["fairness"]["by_group"]) == {"sex", "age_group", "sex*age_group"}
    proc = run_cli("validate", config)
    assert proc.returncode == 0 and "loads and scores" in proc.stdout


@pytest.mark.slow
def test_tabular_credit_audit(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", shipped_config(tmp_path, "credit_risk_tabular.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    metrics = json.loads((out / "summary.json").read_text())["auditors"]["performance"]["metrics"]
    assert metrics["n"] == 300 and metrics["roc_auc"] > 0.7
