"""The whole path on tiny models: config -> build -> auditors -> gates -> every contract file."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.model_store import MARKER
from auditkit.results import AuditResult
from tests.conftest import base_config, run_cli, write_config

CONTRACT_FILES = {"report.html", "summary.json", "junit.xml", "summary.md", "predictions.csv", "attributions.jsonl"}


def strict_json(path):
    def no_constants(name):
        raise AssertionError(f"{path} contains {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)


@pytest.fixture()
def build_workspace(tmp_path, credit_frame, tiny_bert):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    config = base_config("data.csv", "models/built")
    config["model"]["build"] = {"base": str(tiny_bert), "epochs": 8, "learning_rate": 3e-3, "batch_size": 16}
    write_config(tmp_path, config)
    return tmp_path


def run(workspace, *extra):
    result = CliRunner().invoke(app, ["run", str(workspace / "audit.yaml"), "--quiet", *extra])
    return result


def test_build_then_reuse_and_write_every_contract_file(build_workspace):
    out = build_workspace / "out"
    first = run(build_workspace, "--out", str(out))
    assert first.exit_code == 0, first.stderr
    assert CONTRACT_FILES | {".auditkit-output"} == {p.name for p in out.iterdir()}
    marker = build_workspace / "models" / "built" / MARKER
    built = json.loads(marker.read_text())
    assert built["train_rows"] == 168
    stamp = marker.stat().st_mtime_ns

    second = run(build_workspace, "--out", str(out))
    assert second.exit_code == 0
    assert marker.stat().st_mtime_ns == stamp  # reused, not rebuilt
    summary = strict_json(out / "summary.json")
    assert summary["schema_version"] == 1 and summary["audit"] == "tiny" and summary["verdict"] == "pass"
    assert set(summary["provenance"]) >= {
        "config_sha256",
        "data_sha256",
        "model",
        "model_sha256",
        "auditkit_version",
        "started_at",
        "duration_s",
    }
    metrics = summary["auditors"]["performance"]["metrics"]
    assert metrics["n"] == 72 and metrics["accuracy"] > 0.75  # the tiny model learnt the purpose word
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["id", "y_true", "y_pred", "score", "sex", "age_group"]
    assert len(predictions) == 72
    assert (predictions["y_pred"] == (predictions["score"] >= 0.5)).all()
    assert metrics["accuracy"] == pytest.approx((predictions["y_true"] == predictions["y_pred"]).mean())


def test_changed_build_settings_rebuild(build_workspace):
    assert run(build_workspace, "--out", str(build_workspace / "o1")).exit_code == 0
    marker = build_workspace / "models" / "built" / MARKER
    key = json.loads(marker.read_text())["key"]
    config = json.loads(json.dumps(__import__("yaml").safe_load((build_workspace / "audit.yaml").read_text())))
    config["model"]["build"]["epochs"] = 1
    write_config(build_workspace, config)
    assert run(build_workspace, "--out", str(build_workspace / "o2")).exit_code == 0
    assert json.loads(marker.read_text())["key"] != key


def test_same_config_and_seed_give_the_same_numbers(build_workspace):
    outs = [build_workspace / "a", build_workspace / "b"]
    for out in outs:
        assert run(build_workspace, "--out", str(out)).exit_code == 0
    a, b = (strict_json(o / "summary.json") for o in outs)
    for s in (a, b):
        s["provenance"].pop("started_at")
        s["provenance"].pop("duration_s")
        s["provenance"].pop("auditor_seconds")
    assert a == b
    assert (outs[0] / "predictions.csv").read_bytes() == (outs[1] / "predictions.csv").read_bytes()


def test_failing_gate_exits_1_and_is_reported(trained_workspace):
    workspace = trained_workspace  # a model that predicts both labels: its accuracy is a number
    config = __import__("yaml").safe_load((workspace / "audit.yaml").read_text())
    config["gates"] = [
        {"metric": "performance.accuracy", "op": ">=", "threshold": 0.99, "source": "strict policy"},
        {"metric": "performance.roc_auc", "op": ">=", "threshold": 0.0},
    ]
    write_config(workspace, config)
    out = workspace / "out"
    result = CliRunner().invoke(app, ["run", str(workspace / "audit.yaml"), "--out", str(out)])  # not --quiet
    assert result.exit_code == 1
    headline = "FAIL (1 passed, 1 failed)"
    verdict_lines = [line for line in result.stdout.splitlines() if not line.startswith("auditkit: ")]
    assert verdict_lines[0] == f"{headline}; blocking: performance.accuracy"  # after the step lines
    summary = strict_json(out / "summary.json")
    assert summary["verdict"] == "fail" and summary["verdict_text"] == headline
    assert headline in (out / "summary.md").read_text().splitlines()[0]
    assert f"Verdict: {headline}" in (out / "report.html").read_text()
    assert [g["status"] for g in summary["gates"]] == ["fail", "pass"]
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 2 and suite.get("failures") == "1"
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    markdown = (out / "summary.md").read_text()
    assert "FAIL" in markdown and "performance.accuracy" in markdown and "strict policy" in markdown


def test_failed_run_leaves_the_previous_outputs(workspace, monkeypatch):
    out = workspace / "out"
    assert run(workspace, "--out", str(out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from auditkit.report import html

    def broken(result, path):
        path.write_text("<html>half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(html, "write", broken)
    result = run(workspace, "--out", str(out))
    assert result.exit_code == 2 and result.stderr.startswith("error: unexpected RuntimeError: disk full")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in workspace.iterdir() if p.name.startswith(".out")] == []


def test_untrusted_text_is_escaped_in_html_and_markdown(workspace):
    frame = pd.read_csv(workspace / "data.csv")
    payload = "<script>alert(1)</script>"
    frame["sex"] = frame["sex"].where(frame.index % 2 == 0, payload)
    frame.to_csv(workspace / "data.csv", index=False)
    config = __import__("yaml").safe_load((workspace / "audit.yaml").read_text())
    config["description"] = '<img src=x onerror="alert(2)">'
    config["gates"][0]["source"] = "<b>policy</b> | injected"
    write_config(workspace, config)
    out = workspace / "out"
    assert run(workspace, "--out", str(out)).exit_code == 0
    html = (out / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    assert "<b>policy</b>" not in html and "&lt;b&gt;policy&lt;/b&gt;" in html
    assert html.count("<script") == html.count("</script>")
    markdown = (out / "summary.md").read_text()
    assert "<script" not in markdown and "<img" not in markdown
    assert "<b>" not in (out / "summary.md").read_text()
    assert payload in pd.read_csv(out / "predictions.csv")["sex"].tolist()  # data files keep the literal text


def test_html_is_self_contained_with_plotly_once(workspace):
    out = workspace / "out"
    assert run(workspace, "--out", str(out)).exit_code == 0
    html = (out / "report.html").read_text()
    assert html.count("Plotly.newPlot") == 1  # one loader for all figures
    assert html.count("plotly.js v") <= 2 and "cdn.plot.ly/plotly" not in html
    assert "<script src=" not in html and "<link " not in html
    assert html.count('class="figure-data"') == 2


def test_only_skips_other_gates_with_a_note(workspace):
    result = run(workspace, "--out", str(workspace / "o"), "--only", "nothing")
    assert result.exit_code == 2 and "--only" in result.stderr


def test_tabular_adapter_through_the_cli(tmp_path, credit_frame):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    config = base_config("data.csv", "models/mlp")
    del config["data"]["text"]
    config["model"] = {
        "adapter": "torch-tabular",
        "path": "models/mlp",
        "build": {"epochs": 30, "features": ["age", "amount", "purpose", "sex"]},
    }
    config["auditors"]["explain"] = {"n_examples": 8, "protected_words": {"sex": {"words": ["sex", "female"]}}}
    write_config(tmp_path, config)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "audit.yaml"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    summary = strict_json(out / "summary.json")
    assert summary["auditors"]["performance"]["metrics"]["accuracy"] > 0.75
    explain = summary["auditors"]["explain"]
    assert explain["units"] == "features" and explain["baseline"] == "mean_training_encoding"
    assert explain["protected_words_missing"] == {}
    glossary = (out / "report.html").read_text().split('id="glossary"')[1]
    assert "mean of the training rows" in glossary and "PAD" not in glossary and "each word" not in glossary


def test_validate_checks_without_running(workspace):
    result = CliRunner().invoke(app, ["validate", str(workspace / "audit.yaml")])
    assert result.exit_code == 0, result.stderr
    assert "loads and scores" in result.stdout and not (workspace / "reports").exists()


def test_notebook_api_returns_the_typed_result(workspace):
    result = auditkit.run(workspace / "audit.yaml", write=False)
    assert isinstance(result, AuditResult)
    assert result.auditors["performance"].metrics["n"] == 72
    out = workspace / "out"
    assert run(workspace, "--out", str(out)).exit_code == 0
    written = strict_json(out / "summary.json")
    rendered = json.loads(result.to_json())
    for s in (written, rendered):
        s.pop("provenance")
    assert rendered == written  # the same writer as the CLI
    assert result.to_markdown().startswith("## auditkit · tiny")
    assert result.to_html().startswith("<!DOCTYPE html>")


def test_third_party_plugin_registers_through_entry_points(workspace, tmp_path):
    plugins = tmp_path / "site"
    plugins.mkdir()
    (plugins / "lengthcheck.py").write_text(
        "from auditkit.auditors.base import Auditor\n"
        "from auditkit.config import StrictModel\n"
        "from auditkit.results import AuditorResult, MetricValue\n"
        "class Settings(StrictModel):\n    limit: int = 100\n"
        "class Result(AuditorResult):\n    mean_length: float\n"
        "    def metric_values(self):\n        return {'mean_length': MetricValue(self.mean_length)}\n"
        "class LengthCheck(Auditor):\n    '''Mean text length of the test split.'''\n"
        "    name = 'lengthcheck'\n    Settings = Settings\n"
        "    @classmethod\n    def metric_ids(cls, settings, config):\n        return {'lengthcheck.mean_length'}\n"
        "    def run(self, context):\n"
        "        texts = context.data.test.texts\n"
        "        return Result(mean_length=sum(map(len, texts)) / len(texts))\n"
    )
    dist = plugins / "lengthcheck-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lengthcheck\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[auditkit.auditors]\nlengthcheck = lengthcheck:LengthCheck\n")
    config = __import__("yaml").safe_load((workspace / "audit.yaml").read_text())
    config["auditors"]["lengthcheck"] = {"limit": 10}
    config["gates"].append({"metric": "lengthcheck.mean_length", "op": "<=", "threshold": 1000})
    write_config(workspace, config)
    env_path = os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        listed = run_cli("list")
        assert "lengthcheck" in listed.stdout and "lengthcheck 0.1" in listed.stdout
        out = workspace / "out"
        proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        schema = run_cli("schema").stdout
        assert "lengthcheck" in schema and "Mean text length" in schema
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.__setitem__("PYTHONPATH", old)
    summary = strict_json(out / "summary.json")
    assert summary["auditors"]["lengthcheck"]["mean_length"] > 20
    assert summary["gates"][-1]["status"] == "pass"
    assert "lengthcheck" in (out / "report.html").read_text()
