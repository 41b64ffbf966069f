"""Capabilities: derived from types, engines found through the class hierarchy, checked at validate time."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from auditkit.adapters.base import ModelAdapter
from auditkit.adapters.capabilities import (
    Attributable,
    Retrainable,
    Scorer,
    TabularAttributable,
    TextAttributable,
    capabilities,
    capability_name,
)
from auditkit.adapters.hf_text import HfTextAdapter, HfTextConfig
from auditkit.adapters.torch_tabular import TorchTabularAdapter
from auditkit.config import DataConfig
from auditkit.data import load_data
from auditkit.explain.engines import engine_for
from auditkit.explain.tabular_ig import TabularIG
from auditkit.explain.text_ig import TextIG
from auditkit.predictions import Predictions
from auditkit.progress import SILENT
from tests.conftest import base_config, run_cli, write_config

SCORE_ONLY = '''
from typing import Literal
import numpy as np
from auditkit.adapters.base import ModelAdapter
from auditkit.config import ModelConfigBase
from auditkit.predictions import Predictions

class ScoreOnlyConfig(ModelConfigBase):
    adapter: Literal["score-only"]

class ScoreOnly(ModelAdapter):
    """Scores every row by its age: a model that can do nothing else."""
    name = "score-only"
    Config = ScoreOnlyConfig
    @classmethod
    def build(cls, config, data, out_dir, seed, progress):
        (out_dir / "none.txt").write_text("no model")
    @classmethod
    def load(cls, config, data_config):
        return cls(config, config.path)
    def predict(self, split, progress):
        scores = (split.frame["age"].to_numpy(float) > 30).astype(float) * 0.5 + 0.25
        return Predictions(split.ids, split.y, scores, (scores >= 0.5).astype(int), classes=split.classes)
'''

MY_TEXT = '''
from typing import Literal
from auditkit.adapters.hf_text import HfTextAdapter, HfTextConfig

class MyTextConfig(HfTextConfig):
    adapter: Literal["my-text"]

class MyText(HfTextAdapter):
    """A company's own subclass of hf-text under its own name."""
    name = "my-text"
    Config = MyTextConfig
'''


@contextmanager
def plugin_site(folder: Path, module: str, source: str, entry: str):
    """A folder on PYTHONPATH holding ``module`` and a dist-info that registers ``entry`` as an adapter."""
    folder.mkdir()
    (folder / f"{module}.py").write_text(source)
    dist = folder / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[auditkit.adapters]\n{entry}\n")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), old or ""])
    try:
        yield
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.__setitem__("PYTHONPATH", old)


def test_capabilities_are_read_from_the_class_hierarchy():
    assert capabilities(HfTextAdapter) == {"score", "attribute", "retrain"}
    assert capabilities(TorchTabularAdapter) == {"score", "attribute", "retrain"}
    assert capabilities(ModelAdapter) == {"score"}
    assert capability_name(TextAttributable) == capability_name(Attributable) == "attribute"
    assert capability_name(Retrainable) == "retrain" and capability_name(Scorer) == "score"

    class Renamed(HfTextAdapter):
        name = "renamed"

    class Plain(ModelAdapter):
        name = "plain"

    assert capabilities(Renamed) == capabilities(HfTextAdapter)
    assert capabilities(Plain) == {"score"}


def test_engines_are_found_through_the_hierarchy_not_by_name():
    class Renamed(HfTextAdapter):
        name = "renamed"

    class OwnTabular(TorchTabularAdapter):
        name = "own-tabular"

    class ThirdParty(ModelAdapter, TabularAttributable):  # a plugin implementing the capability itself
        name = "third"

    assert engine_for(HfTextAdapter) is TextIG and engine_for(Renamed) is TextIG
    assert engine_for(OwnTabular) is TabularIG and engine_for(ThirdParty) is TabularIG
    assert engine_for(ModelAdapter) is None


def test_predictions_carry_a_probability_matrix_and_class_names():
    p = Predictions(np.array(["a", "b"]), np.array([1, 0]), np.array([0.9, 0.2]), np.array([1, 0]))
    assert p.probabilities.shape == (2, 2) and p.classes == ("0", "1")
    np.testing.assert_allclose(p.probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(p.scores, [0.9, 0.2])
    three = Predictions(
        np.array(["a"]), np.array([2]), np.array([[0.1, 0.2, 0.7]]), np.array([2]), classes=("x", "y", "z")
    )
    assert three.n_classes == 3 and three.classes == ("x", "y", "z")
    with pytest.raises(ValueError, match="binary"):
        _ = three.scores
    with pytest.raises(ValueError, match="class names"):
        Predictions(np.array(["a"]), np.array([0]), np.array([[0.5, 0.5]]), np.array([0]), classes=("x",))


def test_adapters_fill_class_names_in_label_order(tiny_bert, credit_frame, tmp_path):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    data_config = DataConfig.model_validate(base_config(str(tmp_path / "data.csv"), "m")["data"])
    adapter = HfTextAdapter.load(HfTextConfig(adapter="hf-text", path=tiny_bert, device="cpu"), data_config)
    split = load_data(data_config, 0).test.subset(np.arange(6))
    p = adapter.predict(split, SILENT)
    assert p.classes == ("bad", "good")  # index 1 is the positive label
    np.testing.assert_allclose(p.probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(p.scores, p.probabilities[:, 1])


def test_list_shows_each_adapter_with_its_capabilities(tmp_path):
    with plugin_site(tmp_path / "site", "scoreonly", SCORE_ONLY, "score-only = scoreonly:ScoreOnly"):
        listed = run_cli("list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert "score, attribute, retrain" in lines["hf-text"]
    assert "score, attribute, retrain" in lines["torch-tabular"]
    assert "score " in lines["score-only"] and "attribute" not in lines["score-only"]
    assert "needs attribute" in lines["explain"] and "needs retrain" in lines["privacy"]
    assert "needs score" in lines["performance"]


@pytest.mark.parametrize(("auditor", "capability"), [("explain", "attribute"), ("privacy", "retrain")])
def test_validate_names_auditor_adapter_and_missing_capability(workspace, auditor, capability):
    config = base_config("data.csv", "model")
    config["model"] = {"adapter": "score-only", "path": "model"}
    config["auditors"] = {"performance": {}, auditor: {}}
    write_config(workspace, config)
    (workspace / "model").mkdir()  # the user's own model folder: nothing to build
    with plugin_site(workspace / "site", "scoreonly", SCORE_ONLY, "score-only = scoreonly:ScoreOnly"):
        proc = run_cli("validate", str(workspace / "audit.yaml"))
        performance_only = base_config("data.csv", "model", model={"adapter": "score-only", "path": "model"})
        write_config(workspace, performance_only, "scorer.yaml")
        scored = run_cli("run", str(workspace / "scorer.yaml"), "--out", str(workspace / "out"), "--quiet")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error:")
    assert f"auditor '{auditor}'" in proc.stderr and "adapter 'score-only'" in proc.stderr
    assert f"'{capability}' capability" in proc.stderr and "Traceback" not in proc.stderr
    assert scored.returncode == 0, scored.stderr  # a scorer alone is enough for performance


def test_a_subclass_under_another_name_gets_explain_and_privacy(workspace, tiny_bert):
    config = base_config("data.csv", str(tiny_bert))
    config["model"]["adapter"] = "my-text"
    config["auditors"] = {
        "explain": {"n_examples": 4, "start_steps": 16, "max_steps": 32, "tolerance": 1.0, "n_boot": 50},
        "privacy": {"epsilons": [2.0], "epochs": 1, "base": str(tiny_bert), "n_boot": 50, "min_group_size": 5},
    }
    config["gates"] = []
    write_config(workspace, config)
    out = workspace / "out"
    with plugin_site(workspace / "site", "mytext", MY_TEXT, "my-text = mytext:MyText"):
        assert run_cli("validate", str(workspace / "audit.yaml")).returncode == 0
        proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    explain, privacy = summary["auditors"]["explain"], summary["auditors"]["privacy"]
    assert explain["method"] == "integrated_gradients" and explain["n_examples"] == 4
    assert explain["relative_delta"]["share_above_tolerance"] == 0.0
    assert privacy["runs"][0]["epsilon"] <= 2.0 * 1.01 and "top 1 of" in privacy["trained"]
    records = [json.loads(line) for line in (out / "attributions.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["tokens"] and "text" in r for r in records)


def test_no_explain_or_privacy_module_imports_a_concrete_adapter():
    root = Path(__file__).resolve().parents[1] / "auditkit"
    for package in ("explain", "privacy", "auditors"):
        for path in (root / package).glob("*.py"):
            source = path.read_text()
            for concrete in ("adapters.hf_text", "adapters.torch_tabular", "adapters.hf_retrain"):
                assert concrete not in source, f"{path.name} imports {concrete}"
            assert "input_kind" not in source and '"hf-text"' not in source, path.name
