"""Every bad input gives exactly one ``error:`` line on stderr and exit code 2 — no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from auditkit.cli import app
from tests.conftest import make_tiny_bert, run_cli, write_config


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def assert_user_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def config_of(workspace: Path) -> dict:
    return yaml.safe_load((workspace / "audit.yaml").read_text())


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata:\n  path: [unclosed\nmodel: {}\n")
    line = assert_user_error(invoke("run", str(path)), "bad.yaml:", "malformed YAML")
    assert ":4" in line or ":3" in line


def test_empty_config(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n")
    assert_user_error(invoke("run", str(path)), "empty.yaml", "empty")


def test_list_instead_of_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- name: x\n- data: y\n")
    assert_user_error(invoke("validate", str(path)), "list.yaml", "mapping", "not a list")


def test_unknown_key_suggests_the_closest(workspace):
    config = config_of(workspace)
    config["data"]["sensitive_feature"] = config["data"].pop("sensitive_features")
    write_config(workspace, config)
    line = assert_user_error(invoke("validate", str(workspace / "audit.yaml")), "data.sensitive_feature")
    assert "did you mean 'sensitive_features'" in line
    assert "audit.yaml:" in line  # names the file and line


def test_unknown_nested_model_key_suggests(workspace):
    config = config_of(workspace)
    config["model"]["max_lenght"] = 32
    write_config(workspace, config)
    assert_user_error(invoke("validate", str(workspace / "audit.yaml")), "model.max_lenght", "max_length")


def test_unknown_auditor_suggests(workspace):
    config = config_of(workspace)
    config["auditors"] = {"performence": {}}
    write_config(workspace, config)
    assert_user_error(invoke("validate", str(workspace / "audit.yaml")), "performence", "performance")


def test_missing_data_file(workspace):
    config = config_of(workspace)
    config["data"]["path"] = "nowhere.csv"
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "nowhere.csv", "not found")


def test_missing_column(workspace):
    config = config_of(workspace)
    config["data"]["sensitive_features"] = ["gender"]
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "'gender'", "sensitive_features")


def test_label_values_other_than_declared(workspace):
    frame = pd.read_csv(workspace / "data.csv")
    frame.loc[3, "risk"] = "unknown"
    frame.to_csv(workspace / "data.csv", index=False)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "'risk'", "'unknown'")


def test_nan_in_sensitive_feature(workspace):
    frame = pd.read_csv(workspace / "data.csv")
    frame.loc[[5, 9], "sex"] = None
    frame.to_csv(workspace / "data.csv", index=False)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "'sex'", "2 rows")


def test_empty_dataset(workspace):
    (workspace / "data.csv").write_text("applicant_id,sex,age,amount,purpose,risk\n")
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "data.csv", "no rows")


def test_zero_byte_dataset(workspace):
    (workspace / "data.csv").write_bytes(b"")
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "data.csv", "no rows")


def test_model_folder_without_safetensors(workspace, tiny_bert, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for f in tiny_bert.iterdir():
        if f.suffix != ".safetensors":
            (pickled / f.name).write_bytes(f.read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    config = config_of(workspace)
    config["model"]["path"] = str(pickled)
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "no .safetensors", "pytorch_model.bin")


def test_model_with_three_labels(workspace, credit_frame, tmp_path):
    texts = credit_frame["purpose"].tolist()
    three = make_tiny_bert(tmp_path / "three", texts, num_labels=3)
    config = config_of(workspace)
    config["model"]["path"] = str(three)
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "3 labels", "binary")


def test_non_utf8_data_file(workspace):
    (workspace / "data.csv").write_bytes("applicant_id,sex\nA1,m\xe4nnlich\n".encode("latin-1"))
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "data.csv", "not UTF-8")


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_user_error(invoke("validate", str(path)), "latin.yaml", "not UTF-8")


def test_output_folder_not_writable(workspace):
    # /proc refuses new folders even to root (CI runs as root, so chmod alone would not do).
    line = assert_user_error(invoke("run", str(workspace / "audit.yaml"), "--out", "/proc/auditkit/out"), "--out")
    assert "cannot write" in line


def test_output_folder_blocked_by_a_file(workspace, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    assert_user_error(invoke("run", str(workspace / "audit.yaml"), "--out", str(blocker / "out")), "--out", "blocker")


def test_gate_on_unknown_metric_suggests(workspace):
    config = config_of(workspace)
    config["gates"] = [{"metric": "performance.acuracy", "op": ">=", "threshold": 0.5}]
    write_config(workspace, config)
    assert_user_error(invoke("validate", str(workspace / "audit.yaml")), "gates[0].metric", "performance.accuracy")


def test_wrong_type_names_the_key(workspace):
    config = config_of(workspace)
    config["data"]["split"]["test_size"] = 1.5
    write_config(workspace, config)
    assert_user_error(invoke("validate", str(workspace / "audit.yaml")), "data.split.test_size")


def test_missing_config_file(tmp_path):
    assert_user_error(invoke("run", str(tmp_path / "absent.yaml")), "absent.yaml", "not found")


def test_template_placeholder_must_be_a_column(workspace):
    config = config_of(workspace)
    config["data"]["text"]["template"] = "A {age.__class__} applicant"
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "data.text.template")


def test_long_texts_are_truncated_and_counted_not_an_error(workspace):
    frame = pd.read_csv(workspace / "data.csv")
    frame.loc[frame.index[::3], "purpose"] = " ".join(["education"] * 80)
    frame.to_csv(workspace / "data.csv", index=False)
    out = workspace / "out"
    result = invoke("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    truncated = summary["auditors"]["performance"]["metrics"]["n_truncated"]
    assert 0 < truncated <= summary["auditors"]["performance"]["metrics"]["n"]
    assert any("truncated" in note for note in summary["notes"])


def test_real_process_prints_one_line_without_traceback(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    proc = run_cli("run", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ({"hidden_sizes": [64, 0]}, "model.build.hidden_sizes[1]"),  # a layer of no units: a constant model
        ({"features": []}, "model.build.features"),  # not "every column", as an absent key would be
    ],
)
def test_tabular_build_lists_refuse_empty_and_zero(workspace, edit, key):
    config = config_of(workspace)
    del config["data"]["text"]
    config["model"] = {"adapter": "torch-tabular", "path": "models/mlp", "build": {"epochs": 1, **edit}}
    write_config(workspace, config)
    assert_user_error(invoke("validate", str(workspace / "audit.yaml")), key)
