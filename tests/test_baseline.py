"""Baseline gates: a model shifted against one group fails; the same model against itself passes."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
import yaml
from safetensors.torch import load_file, save_file

from tests.conftest import ROOT, run_cli

DP_SEX = "fairness.demographic_parity_ratio[sex]"


def credit_config(tmp_path, model_path: str, build: bool) -> str:
    config = yaml.safe_load((ROOT / "audits/credit_risk_tabular.yaml").read_text())
    config["name"] = "baseline_test"
    config["data"]["path"] = str(ROOT / "audits/data/german_credit.csv")
    config["model"]["path"] = model_path
    if build:
        config["model"]["build"].update(hidden_sizes=[], epochs=30)  # linear: a logit shift is exact
    else:
        del config["model"]["build"]
    config["auditors"]["fairness"] = {"n_boot": 400}
    config["gates"] = [
        {"metric": DP_SEX, "op": ">=", "threshold": 0.3, "baseline_tolerance": 0.02, "source": "regression watch"},
        {"metric": "performance.accuracy", "op": ">=", "threshold": 0.5, "baseline_tolerance": 0.1},
    ]
    path = tmp_path / ("build.yaml" if build else "fixed.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def shift_against(model_dir, shifted_dir, feature: str, amount: float):
    shutil.copytree(model_dir, shifted_dir)
    (shifted_dir / "auditkit-build.json").unlink()
    encoding = json.loads((shifted_dir / "encoding.json").read_text())
    names = []
    for f in encoding["features"]:
        names += [f["name"]] if f["kind"] == "numeric" else [f"{f['name']}={c}" for c in f["categories"]]
    state = load_file(shifted_dir / "model.safetensors")
    state["0.weight"][1, names.index(feature)] -= amount  # lower the positive logit for this group only
    save_file(state, shifted_dir / "model.safetensors")


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    out = tmp / "base"
    proc = run_cli("run", credit_config(tmp, str(tmp / "model"), build=True), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return tmp, out


def test_same_model_against_itself_passes(baseline_run):
    tmp, base = baseline_run
    out = tmp / "again"
    config = credit_config(tmp, str(tmp / "model"), build=True)
    proc = run_cli("run", config, "--out", str(out), "--baseline", str(base / "summary.json"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    gates = json.loads((out / "summary.json").read_text())["gates"]
    for gate in gates:
        assert gate["baseline"]["method"] == "paired bootstrap"
        assert gate["baseline"]["worsening"] == 0 and gate["baseline"]["status"] == "ok"


def test_model_shifted_against_women_fails_the_baseline_gate(baseline_run):
    tmp, base = baseline_run
    shift_against(tmp / "model", tmp / "shifted", "sex=female", 0.7)
    out = tmp / "shifted-out"
    config = credit_config(tmp, str(tmp / "shifted"), build=False)
    proc = run_cli("run", config, "--out", str(out), "--baseline", str(base / "summary.json"))
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    dp = next(g for g in summary["gates"] if g["id"] == DP_SEX)
    old = json.loads((base / "summary.json").read_text())
    old_dp = next(g for g in old["gates"] if g["id"] == DP_SEX)
    assert dp["status"] == "fail" and dp["baseline"]["status"] == "regressed"
    assert dp["baseline"]["worsening"] == pytest.approx(old_dp["value"] - dp["value"], abs=1e-12)
    assert dp["baseline"]["worsening_ci"][0] > 0
    assert dp["ci"][1] >= 0.3  # the threshold alone would not have caught it: the baseline did
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    failing = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failing == [DP_SEX]
    markdown = (out / "summary.md").read_text()
    assert "compared with baseline" in markdown and "regressed" in markdown
    assert "compared with baseline" in (out / "report.html").read_text()


def test_without_baseline_predictions_falls_back_to_intervals(baseline_run, tmp_path):
    tmp, base = baseline_run
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(base / "summary.json", lone / "summary.json")
    out = tmp_path / "out"
    config = credit_config(tmp, str(tmp / "model"), build=True)
    proc = run_cli("run", config, "--out", str(out), "--baseline", str(lone / "summary.json"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    gates = json.loads((out / "summary.json").read_text())["gates"]
    assert {g["baseline"]["method"] for g in gates} == {"intervals"}


def test_unusable_baseline_is_a_user_error(tmp_path, baseline_run):
    tmp, _ = baseline_run
    bad = tmp_path / "summary.json"
    bad.write_text('{"schema_version": 99}')
    proc = run_cli("run", credit_config(tmp, str(tmp / "model"), build=True), "--baseline", str(bad), "--quiet")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --baseline")
