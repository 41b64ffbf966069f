"""Every auditor setting, against every task: honoured (the task's implementation reads it while it
runs) or refused at validate in one line that names the key and the task. Never silently ignored."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from auditkit import registry
from auditkit.auditors.base import TASKS, AuditContext, Auditor
from auditkit.config import StrictModel
from auditkit.config_file import load_config
from auditkit.errors import AuditError
from auditkit.progress import SILENT
from auditkit.results import AuditorResult
from auditkit.runner import prepare
from tests.conftest import base_config, write_config
from tests.ner_support import GROUP_A, GROUP_B, make_sentences, make_tiny_token_bert, vocabulary_texts, write_jsonl

TAGS = ["O", "B-location", "I-location", "B-person", "I-person"]
PROTECTED = {"origin": {"words": list(GROUP_A)}}

#: A valid value other than the default for every setting of every built-in auditor. A new setting
#: fails ``test_every_setting_has_a_sample`` until it is listed here, and so is walked against every task.
SAMPLES: dict[str, dict[str, Any]] = {
    "performance": {"calibration_bins": 10, "confidence": 0.9, "n_boot": 60},
    "fairness": {
        "features": ["sex"],
        "intersections": [["sex", "age_group"]],
        "method": "to_overall",
        "confidence": 0.9,
        "n_boot": 60,
        "min_group_size": 5,
        "min_class_size": 2,
        "small_groups": "exclude",
        "counterfactual": {"swap": {"pairs": [["male", "female"]]}},
        "name_probes": {"origin": {"names": "names.csv", "group_column": "origin", "min_names": 2}},
    },
    "explain": {
        "n_examples": 4,
        "ids": [],
        "target": "positive",
        "output": "probability",
        "baseline_token": "unk",
        "tolerance": 0.5,
        "quadrature": "gauss_legendre",
        "start_steps": 24,
        "max_steps": 32,
        "token_budget": 4096,
        "protected_words": {"sex": {"words": ["male"]}},
        "top_k": 5,
        "min_count": 1,
        "faithfulness_percents": [10, 50],
        "n_boot": 60,
        "include_outside": True,
    },
    "privacy": {
        "epsilons": [4.0],
        "sweep": [{"epsilon": 4.0, "max_grad_norm": 0.5}],
        "delta": 1e-3,
        "accountant": "prv",
        "max_grad_norm": 0.8,
        "epochs": 1,
        "learning_rate": 0.01,
        "validation_share": 0.3,
        "threshold": "argmax",
        "lira_shadows": 1,
        "batch_size": 32,
        "max_physical_batch_size": 16,
        "run_kind": "top_layers",
        "lora_rank": 2,  # walked with run_kind lora (RUN_KINDS)
        "train_top_layers": 1,
        "pooling": "mean",
        "base": "base",
        "grad_sample_mode": "hooks",
        "cache_activations": False,
        "n_boot": 60,
        "min_group_size": 5,
    },
    "mitigation": {
        "sensitive_feature": "sex",
        "methods": {"tpr": {"method": "threshold", "constraint": "true_positive_rate_parity", "strengths": [0.05]}},
        "validation_share": 0.5,
        "confidence": 0.9,
        "n_boot": 60,
        "min_group_size": 5,
        "min_class_size": 2,
        "method": "to_overall",
        "small_groups": "exclude",
    },
}


@pytest.fixture(scope="module")
def token_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("settings_tokens")
    make_tiny_token_bert(folder / "base", vocabulary_texts(), TAGS)
    rows = [row | {"parity": str(i % 2)} for i, row in enumerate(make_sentences(120, seed=0))]
    write_jsonl(folder / "data.jsonl", rows)
    rows = "".join(f"{a},a\n{b},b\n" for a, b in zip(GROUP_A, GROUP_B, strict=True))
    (folder / "names.csv").write_text("name,origin\n" + rows, encoding="utf-8")
    return folder


def token_config(auditors: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "settings_tokens",
        "seed": 0,
        "data": {"task": "token-classification", "path": "data.jsonl", "id_column": "sid"}
        | {"sensitive_features": ["origin", "parity"], "split": {"test_size": 0.3}},
        "model": {"adapter": "hf-token", "path": "base", "max_length": 32, "batch_size": 32},
        "auditors": auditors,
    }


def _for_task(name: str, key: str, task: str) -> Any:
    """The sample value, adjusted to the task's data (token data has 'origin', not 'sex')."""
    value = copy.deepcopy(SAMPLES[name][key])
    if task == "token-classification" and name in ("fairness", "explain"):
        token_values = {"features": ["origin"], "intersections": [["origin", "parity"]], "protected_words": PROTECTED}
        value = (token_values | {"target": "gold"}).get(key, value)
    return value


def _config(task: str, folder: Path, auditors: dict[str, Any]) -> dict[str, Any]:
    if task == "token-classification":
        return token_config(auditors)
    config = base_config("data.csv", str(folder / "model"), auditors=auditors, gates=[])
    if task == "multiclass":
        config["data"] |= {"task": "multiclass", "label": "purpose", "classes": None}
        for key in ("positive_label", "negative_label"):
            config["data"].pop(key)
    return config


def test_every_setting_has_a_sample():
    for name, cls in registry.auditors().items():
        if cls.__module__.startswith("auditkit."):
            assert set(cls.Settings.model_fields) == set(SAMPLES[name]), name


class BinaryOnly(Auditor):
    """A plugin auditor that audits binary tasks only."""

    name = "binaryonly"
    Settings = StrictModel

    def run(self, context: AuditContext) -> AuditorResult:
        return AuditorResult()


BinaryOnly.tasks = ("binary",)


def test_a_plugin_auditor_on_a_task_it_does_not_audit_is_refused(token_folder, monkeypatch):
    registered = {**registry.registered_auditors(), "binaryonly": BinaryOnly}
    monkeypatch.setattr(registry, "registered_auditors", lambda: registered)
    registry.implementations.cache_clear()
    try:
        path = write_config(token_folder, token_config({"binaryonly": {}}), "plugin.yaml")
        with pytest.raises(AuditError) as caught:
            load_config(path)
        message = str(caught.value)
        assert "auditor 'binaryonly' does not audit task token-classification (it audits: binary)" in message
        assert message.startswith(f"{path}:")
        assert registry.auditor_for("performance", "token-classification") is not None
        assert registry.auditor_for("performance", "no-such-task") is None
    finally:
        registry.implementations.cache_clear()


@pytest.mark.parametrize("task", TASKS)
def test_refused_settings_are_one_line_naming_key_and_task(task, token_folder, credit_frame, tmp_path):
    folder = token_folder if task == "token-classification" else tmp_path
    if task != "token-classification":
        credit_frame.to_csv(tmp_path / "data.csv", index=False)
    checked = 0
    for name in registry.auditors():
        cls = registry.auditor_for(name, task)
        if cls is None:  # the whole auditor is refused on this task, in one line
            minimal = {key: SAMPLES[name][key] for key in ("methods",) if key in SAMPLES[name]}
            path = write_config(folder, _config(task, folder, {name: minimal}), f"refuse_{name}.yaml")
            with pytest.raises(AuditError, match=f"auditor '{name}' does not audit task {task}"):
                load_config(path)
            continue
        for key in cls.refuses:
            assert key in cls.Settings.model_fields, f"{cls.__name__}.refuses names no setting '{key}'"
            config = _config(task, folder, {name: {key: _for_task(name, key, task)}})
            path = write_config(folder, config, f"refuse_{name}_{key}.yaml")
            with pytest.raises(AuditError) as caught:
                load_config(path)
            message = str(caught.value)
            assert f"auditors.{name}.{key}" in message and task in message, message
            assert len(message.splitlines()) == 1
            checked += 1
    implemented = [registry.auditor_for(n, task) for n in registry.auditors()]
    assert checked == sum(len(cls.refuses) for cls in implemented if cls is not None)


class Reads:
    """The settings fields an implementation reads while it runs."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def tracked(self, settings: Any) -> Any:
        fields, keys = type(settings).model_fields, self.keys

        class Tracked(type(settings)):
            def __getattribute__(self, key: str) -> Any:
                if key in fields:
                    keys.add(key)
                return super().__getattribute__(key)

        copied = Tracked.model_validate(settings.model_dump(exclude_unset=True))
        keys.clear()  # validators read fields too; only the run counts
        return copied


def _honoured_run(task: str, folder: Path, name: str) -> tuple[set[str], set[str]]:
    """Run auditor ``name`` on ``task`` with every setting it does not refuse set; (read, not refused)."""
    cls = registry.auditor_for(name, task)
    assert cls is not None
    settings = {key: _for_task(name, key, task) for key in SAMPLES[name] if key not in cls.refuses}
    if task != "token-classification" and name == "privacy":
        settings["base"] = str(folder / "model")
    variants = [settings]
    if name == "privacy":
        settings.pop("sweep", None)  # a sweep entry is one more run; read by the plan either way
        lora = {key: value for key, value in settings.items() if key != "train_top_layers"}
        variants = [{k: v for k, v in settings.items() if k != "lora_rank"}, lora | {"run_kind": "lora"}]
    read: set[str] = set()
    for k, variant in enumerate(variants):  # settings of one run kind each are walked with their kind
        config = _config(task, folder, {name: variant})
        loaded = load_config(write_config(folder, config, f"honour_{name}_{k}.yaml"))
        prepared = prepare(loaded, SILENT, build=False)
        context = AuditContext(loaded, prepared.data, prepared.adapter, SILENT)
        reads = Reads()
        cls(reads.tracked(getattr(loaded.auditors, name))).run(context)
        read |= reads.keys
    expected = set(cls.Settings.model_fields) - set(cls.refuses)
    return read, expected


@pytest.mark.parametrize("name", ["performance", "fairness", "explain", "privacy"])
def test_token_settings_that_are_accepted_are_read(name, token_folder):
    read, expected = _honoured_run("token-classification", token_folder, name)
    assert expected - read - {"sweep"} == set(), f"accepted but never read on the token path: {expected - read}"


@pytest.mark.parametrize("name", ["performance", "fairness", "explain", "mitigation"])
def test_binary_settings_that_are_accepted_are_read(name, tmp_path, credit_frame, tiny_bert):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "model").symlink_to(tiny_bert)
    read, expected = _honoured_run("binary", tmp_path, name)
    assert expected - read == set(), f"accepted but never read on the binary path: {expected - read}"


@pytest.mark.parametrize(("key", "value", "kind"), [("train_top_layers", 2, "probe"), ("lora_rank", 4, "top_layers")])
def test_a_setting_of_another_run_kind_is_refused(token_folder, key, value, kind):
    path = write_config(token_folder, token_config({"privacy": {"run_kind": kind, key: value}}), "kind.yaml")
    with pytest.raises(AuditError) as caught:
        load_config(path)
    assert f"{key} applies to run_kind" in str(caught.value) and len(str(caught.value).splitlines()) == 1
