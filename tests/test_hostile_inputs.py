"""Hostile and malformed inputs: each is one ``error:`` line naming what to change, never garbage scored."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from auditkit.cli import app
from tests.conftest import base_config, make_tiny_bert, write_config
from tests.test_bad_inputs import assert_user_error, config_of


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def validate(workspace):
    return invoke("validate", str(workspace / "audit.yaml"))


# --- the config file ---------------------------------------------------------------------------


def test_duplicate_yaml_key_names_both_lines(workspace):
    text = (workspace / "audit.yaml").read_text()
    text += "gates:\n  - {metric: performance.accuracy, op: '>=', threshold: 0.1}\n"
    (workspace / "audit.yaml").write_text(text)
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("gates:"))
    last = len(text.splitlines()) - 1
    line = assert_user_error(validate(workspace), f"audit.yaml:{last}:", "'gates'", f"line {first}")
    assert first != last, line


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("name: *a8")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert_user_error(invoke("validate", str(path)), "bomb.yaml:", "aliases expand")


def test_recursive_yaml_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: &x [1, *x]\n")
    assert_user_error(invoke("validate", str(path)), "loop.yaml:1")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_threshold_is_a_config_error(workspace, value):
    text = (workspace / "audit.yaml").read_text().replace("threshold: 0.0", f"threshold: {value}")
    (workspace / "audit.yaml").write_text(text)
    assert_user_error(validate(workspace), "'gates[0].threshold'", "finite")


@pytest.mark.parametrize("epsilons", [[0], [-1, 3], [1, 1]])
def test_bad_epsilons_are_config_errors(workspace, epsilons):
    config = config_of(workspace)
    config["auditors"]["privacy"] = {"epsilons": epsilons}
    write_config(workspace, config)
    assert_user_error(validate(workspace), "auditors.privacy.epsilons")


def test_duplicate_gate_is_a_config_error(workspace):
    config = config_of(workspace)
    config["gates"].append(dict(config["gates"][0], threshold=0.5))
    write_config(workspace, config)
    assert_user_error(validate(workspace), "'gates[1]'", "gates[0]", "performance.accuracy")


def test_long_name_is_a_config_error_naming_name(workspace):
    config = config_of(workspace)
    config["name"] = "n" * 300
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "'name'", "100 characters")


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_bad_seed_blames_the_seed(workspace, seed):
    line = assert_user_error(invoke("run", str(workspace / "audit.yaml"), "--seed", seed), f"--seed {seed}")
    assert "data.csv" not in line


# --- the data file -------------------------------------------------------------------------------


def test_semicolon_csv_gets_a_hint_and_data_sep_reads_it(workspace, credit_frame):
    credit_frame.to_csv(workspace / "data.csv", index=False, sep=";")
    assert_user_error(validate(workspace), "data.csv", "looks like ';'-separated; set data.sep")
    config = config_of(workspace)
    config["data"]["sep"] = ";"
    write_config(workspace, config)
    assert validate(workspace).exit_code == 0


def test_bad_jsonl_line_is_reported_by_line_number(workspace, credit_frame):
    lines = [json.dumps(r) for r in credit_frame.to_dict("records")]
    lines[2] = '{"applicant_id": "A0003", "sex": "male",'
    (workspace / "data.jsonl").write_text("\n".join(lines) + "\n")
    config = config_of(workspace)
    config["data"]["path"] = "data.jsonl"
    write_config(workspace, config)
    assert_user_error(validate(workspace), "data.jsonl:3:", "not valid JSON")


def test_jsonl_line_that_is_not_an_object(workspace, credit_frame):
    lines = [json.dumps(r) for r in credit_frame.to_dict("records")]
    lines[4] = "[1, 2]"
    (workspace / "data.jsonl").write_text("\n".join(lines) + "\n")
    config = config_of(workspace)
    config["data"]["path"] = "data.jsonl"
    write_config(workspace, config)
    assert_user_error(validate(workspace), "data.jsonl:5:", "JSON object")


def test_byte_order_mark_is_not_part_of_the_first_column(workspace, credit_frame):
    (workspace / "data.csv").write_bytes(b"\xef\xbb\xbf" + credit_frame.to_csv(index=False).encode())
    result = validate(workspace)
    assert result.exit_code == 0, result.stderr


def test_repeated_header_column_is_refused(workspace, credit_frame):
    text = credit_frame.to_csv(index=False).splitlines()
    text = [line + ",x" for line in text]
    text[0] = text[0].rsplit(",", 1)[0] + ",sex"
    (workspace / "data.csv").write_text("\n".join(text) + "\n")
    assert_user_error(validate(workspace), "data.csv", "'sex'", "more than once")


def test_whitespace_only_data_file(workspace):
    (workspace / "data.csv").write_text("\n\n  \n")
    assert_user_error(validate(workspace), "data.csv", "no rows")


def test_all_empty_sensitive_column(workspace, credit_frame):
    frame = credit_frame.copy()
    frame["sex"] = None
    frame.to_csv(workspace / "data.csv", index=False)
    assert_user_error(validate(workspace), "'sex'", f"{len(frame)} rows")


def test_derived_column_may_not_silently_replace_an_input(workspace, credit_frame):
    config = config_of(workspace)
    config["data"]["derived"] = {"age": {"source": "age", "edges": [0, 25, 200]}}
    config["data"]["sensitive_features"] = ["sex"]
    write_config(workspace, config)
    assert_user_error(validate(workspace), "data.derived.age", "replace: true")
    config["data"]["derived"]["age"]["replace"] = True
    write_config(workspace, config)
    assert validate(workspace).exit_code == 0


# --- the model folder ----------------------------------------------------------------------------


def test_model_folder_without_tokenizer_is_refused(workspace, tiny_bert, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, bare / name)
    config = config_of(workspace)
    config["model"]["path"] = str(bare)
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "model.path", "no tokenizer.json")


def test_tokenizer_of_another_model_is_refused(workspace, tiny_bert, tmp_path):
    other = make_tiny_bert(tmp_path / "other", ["just a few words " * 3, "nothing like credit"])
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_bert, mixed)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(other / name, mixed / name)
    config = config_of(workspace)
    config["model"]["path"] = str(mixed)
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), "model.path", "tokenizer has", "embedding")


def test_corrupt_safetensors_names_the_path(workspace, tiny_bert, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    config = config_of(workspace)
    config["model"]["path"] = str(broken)
    write_config(workspace, config)
    assert_user_error(invoke("run", str(workspace / "audit.yaml")), str(broken), "safetensors")


# --- tabular inputs ------------------------------------------------------------------------------


@pytest.fixture()
def tabular(tmp_path, credit_frame):
    """A tabular audit whose model is built once from clean data."""
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    config = base_config("data.csv", "models/mlp")
    del config["data"]["text"]
    config["model"] = {"adapter": "torch-tabular", "path": "models/mlp", "build": {"epochs": 2}}
    write_config(tmp_path, config)
    result = invoke("run", str(tmp_path / "audit.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.stderr
    return tmp_path


def frozen_model(workspace):
    """Point the config at the built model without its build section, so new data does not rebuild it."""
    config = config_of(workspace)
    del config["model"]["build"]
    write_config(workspace, config)
    return config


def test_unparseable_numeric_input_names_column_and_rows(tabular, credit_frame):
    frozen_model(tabular)
    frame = credit_frame.copy()
    frame["amount"] = "lots"
    frame.to_csv(tabular / "data.csv", index=False)
    assert_user_error(
        invoke("run", str(tabular / "audit.yaml"), "--out", str(tabular / "out")),
        "'amount'",
        "not numbers",
        "'lots'",
        "id A",
    )


def test_a_few_typos_in_a_numeric_column_stop_the_build(tabular, credit_frame):
    frame = credit_frame.copy()
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[[3, 7], "amount"] = "lots"
    frame.to_csv(tabular / "data.csv", index=False)
    assert_user_error(invoke("run", str(tabular / "audit.yaml")), "'amount'", "2 values", "'lots'")


def test_missing_numeric_inputs_need_a_policy_and_are_noted(tabular, credit_frame):
    config = frozen_model(tabular)
    frame = credit_frame.copy()
    frame.loc[frame.index[:5], "amount"] = None
    frame.to_csv(tabular / "data.csv", index=False)
    out = tabular / "out"
    assert_user_error(invoke("run", str(tabular / "audit.yaml"), "--out", str(out)), "'amount'", "max_missing_share")
    config["model"]["max_missing_share"] = 0.1
    write_config(tabular, config)
    result = invoke("run", str(tabular / "audit.yaml"), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.stderr
    notes = json.loads((out / "summary.json").read_text())["notes"]
    test_ids = pd.read_csv(out / "predictions.csv", dtype={"id": str})["id"]
    n_missing = int(test_ids.isin(frame.loc[frame.index[:5], "applicant_id"]).sum())
    assert n_missing > 0
    assert any(f"'amount' in {n_missing} of {len(test_ids)}" in note for note in notes), notes


# --- baselines -----------------------------------------------------------------------------------


def test_baseline_of_another_audit_is_refused_unless_asked(tabular):
    base = tabular / "out" / "summary.json"
    config = config_of(tabular)
    config["name"] = "another"
    write_config(tabular, config)
    out = tabular / "again"
    line = assert_user_error(
        invoke("run", str(tabular / "audit.yaml"), "--out", str(out), "--baseline", str(base)), "--baseline"
    )
    assert "'tiny' vs 'another'" in line and "--baseline-any" in line
    result = invoke(
        "run", str(tabular / "audit.yaml"), "--out", str(out), "--baseline", str(base), "--baseline-any", "--quiet"
    )
    assert result.exit_code == 0, result.stderr
    notes = " ".join(json.loads((out / "summary.json").read_text())["notes"])
    assert "audit 'another'" in notes and "audit 'tiny'" in notes and "--baseline-any" in notes


def test_baseline_of_another_split_is_refused(tabular):
    base = tabular / "out" / "summary.json"
    result = invoke(
        "run", str(tabular / "audit.yaml"), "--seed", "7", "--out", str(tabular / "o2"), "--baseline", str(base)
    )
    assert_user_error(result, "--baseline", "test split")


def test_baseline_of_the_same_audit_names_both_sides(tabular):
    base = tabular / "out" / "summary.json"
    out = tabular / "again"
    result = invoke("run", str(tabular / "audit.yaml"), "--out", str(out), "--baseline", str(base), "--quiet")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["split_sha256"] == json.loads(base.read_text())["provenance"]["split_sha256"]
    assert any("against the baseline" in note for note in summary["notes"])


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(gates={"performance.accuracy": 0.9}),
        lambda s: s["gates"][0].update(value="0.9"),
        lambda s: s["gates"][0].update(ci=["a", 1]),
        lambda s: s["gates"].append("gate"),
        lambda s: s.update(provenance=[]),
    ],
)
def test_malformed_baseline_is_one_line(tabular, tmp_path, change):
    summary = json.loads((tabular / "out" / "summary.json").read_text())
    change(summary)
    bad = tmp_path / "bad" / "summary.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(summary))
    result = invoke("run", str(tabular / "audit.yaml"), "--out", str(tmp_path / "o"), "--baseline", str(bad))
    assert_user_error(result, "--baseline", "malformed summary.json")


# --- what determines a model ---------------------------------------------------------------------


def test_equivalent_labels_share_a_build_key(tmp_path, credit_frame):
    from auditkit.config_file import load_config
    from auditkit.data import load_data
    from auditkit.model_store import build_key

    frame = credit_frame.assign(risk=(credit_frame["risk"] == "good").astype(int))
    frame.to_csv(tmp_path / "data.csv", index=False)
    keys = []
    for positive, negative in ((1, 0), ("1", "0")):
        config = base_config("data.csv", "m")
        config["data"].update(positive_label=positive, negative_label=negative)
        config["model"]["build"] = {"base": "b"}
        loaded = load_config(write_config(tmp_path, config))
        keys.append(build_key(loaded, load_data(loaded.data, 0)))
    assert keys[0] == keys[1]


def test_model_hash_ignores_the_build_record(tabular):
    from auditkit.adapters.base import BUILD_RECORD, folder_sha256

    model = tabular / "models" / "mlp"
    before = folder_sha256(model)
    record = json.loads((model / BUILD_RECORD).read_text())
    record["built_seconds"] += 12.3
    (model / BUILD_RECORD).write_text(json.dumps(record))
    assert folder_sha256(model) == before
    first = json.loads((tabular / "out" / "summary.json").read_text())["provenance"]["model_sha256"]
    shutil.rmtree(model)
    out = tabular / "rebuilt"
    assert invoke("run", str(tabular / "audit.yaml"), "--out", str(out), "--quiet").exit_code == 0
    assert json.loads((out / "summary.json").read_text())["provenance"]["model_sha256"] == first == before


def test_corrupt_tabular_safetensors_names_the_file(tabular):
    frozen_model(tabular)
    weights = tabular / "models" / "mlp" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    assert_user_error(invoke("run", str(tabular / "audit.yaml"), "--out", str(tabular / "out")), str(weights))


def test_out_onto_the_model_folder_is_refused(tabular):
    model = tabular / "models" / "mlp"
    before = sorted(p.name for p in model.iterdir())
    assert_user_error(
        invoke("run", str(tabular / "audit.yaml"), "--out", str(model)), "--out", "not an auditkit output"
    )
    assert sorted(p.name for p in model.iterdir()) == before


@pytest.mark.parametrize(("column", "role"), [("risk", "the label"), ("applicant_id", "the id column")])
def test_sensitive_feature_may_not_be_the_label_or_the_id(workspace, column, role):
    config = config_of(workspace)
    config["data"]["sensitive_features"] = [column]
    write_config(workspace, config)
    assert_user_error(validate(workspace), "data.sensitive_features", f"'{column}'", role)


def test_nan_bin_edge_is_a_config_error(workspace):
    text = (workspace / "audit.yaml").read_text().replace("- 200", "- .nan")
    (workspace / "audit.yaml").write_text(text)
    assert_user_error(validate(workspace), "data.derived.age_group", "NaN")


def test_the_label_is_never_a_model_input(tmp_path, credit_frame):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    config = base_config("data.csv", "models/mlp")
    del config["data"]["text"]
    config["model"] = {"adapter": "torch-tabular", "path": "models/mlp", "build": {"features": ["age", "risk"]}}
    write_config(tmp_path, config)
    assert_user_error(invoke("run", str(tmp_path / "audit.yaml")), "model.build.features", "'risk'", "label")
    assert not (tmp_path / "models" / "mlp").exists()


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x1c", "\x0b"])
def test_jsonl_strings_may_hold_unicode_line_breaks(workspace, credit_frame, separator):
    rows = credit_frame.to_dict("records")
    rows[3]["purpose"] = f"car{separator}new"
    (workspace / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows))
    config = config_of(workspace)
    config["data"]["path"] = "data.jsonl"
    write_config(workspace, config)
    result = validate(workspace)
    assert result.exit_code == 0, result.stderr
    from auditkit.config_file import load_config
    from auditkit.data import load_data

    data = load_data(load_config(workspace / "audit.yaml").data, 0)
    frame = pd.concat([data.train.frame, data.test.frame])
    assert len(frame) == len(rows) and f"car{separator}new" in set(frame["purpose"])


@pytest.mark.parametrize("separator", ["\u2028", "\u0085"])
def test_token_jsonl_strings_may_hold_unicode_line_breaks(tmp_path, separator):
    from auditkit.ner.reader import read_sentences

    rows = [{"tokens": ["Anna", f"said{separator}hi"], "tags": ["B-PER", "O"]}, {"tokens": ["ok"], "tags": ["O"]}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data = read_sentences(path)
    assert data.tokens == [["Anna", f"said{separator}hi"], ["ok"]]
