"""End to end on the real German credit data; the MiniLM test fine-tunes the real pretrained model."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.test_execution import _summary, _without_timings, assert_same


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
def test_credit_audit_on_the_real_minilm_in_process_and_on_ray(tmp_path):
    """The shipped credit audit, shortened to keep CI within budget (top 2 layers for 2 epochs, 8
    explanations, one DP run), once in process and once with --ray local on the same built model:
    the same summary.json but for timings, and the same attributions."""
    smaller = {
        "explain": {"n_examples": 8},
        "privacy": {"epsilons": [8.0], "epochs": 30, "learning_rate": 3e-2, "lira_shadows": 2},
        "fairness": {"n_boot": 200},
    }
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
    assert run["lira"] is not None and run["mia"] is not None
    assert summary["auditors"]["privacy"]["non_private"]["degenerate"] is None
    assert set(summary["auditors"]["fairness"]["by_group"]) == {"sex", "age_group", "sex*age_group"}
    proc = run_cli("validate", config)
    assert proc.returncode == 0 and "loads and scores" in proc.stdout

    # The same audit on a one-node Ray (explain shards, DP runs and LiRA shadows as Ray tasks).
    proc = run_cli("run", config, "--out", str(tmp_path / "ray"), "--quiet", "--ray", "local")
    assert proc.returncode in (0, 1), proc.stderr
    local, on_ray = (_without_timings(_summary(tmp_path / name / "summary.json")) for name in ("out", "ray"))
    assert_same(on_ray, local)
    records = [
        [json.loads(line) for line in (tmp_path / name / "attributions.jsonl").open()] for name in ("ray", "out")
    ]
    assert_same(records[0], records[1])


@pytest.mark.slow
def test_tabular_credit_audit(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", shipped_config(tmp_path, "credit_risk_tabular.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode in (0, 1), proc.stderr
    metrics = json.loads((out / "summary.json").read_text())["auditors"]["performance"]["metrics"]
    assert metrics["n"] == 300 and metrics["roc_auc"] > 0.7
