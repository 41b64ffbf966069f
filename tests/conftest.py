"""Shared fixtures: a small synthetic credit data set, a tiny random BERT with a tokenizer
trained on that data, and helpers to write audit configs and run the CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "A {age} year old {sex} asks for {amount} DM for {purpose}."
PURPOSES = ["education", "furniture", "car", "business", "repairs", "holiday"]


def make_credit_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Synthetic applicants whose label depends mostly on the purpose word."""
    rng = np.random.default_rng(seed)
    purpose = rng.choice(PURPOSES, size=n)
    sex = rng.choice(["male", "female"], size=n, p=[0.6, 0.4])
    age = rng.integers(19, 70, size=n)
    amount = rng.integers(5, 100, size=n) * 100
    good = np.isin(purpose, ["education", "business", "repairs"])
    flip = rng.random(n) < 0.1
    label = np.where(good ^ flip, "good", "bad")
    return pd.DataFrame(
        {
            "applicant_id": [f"A{i:04d}" for i in range(1, n + 1)],
            "sex": sex,
            "age": age,
            "amount": amount,
            "purpose": purpose,
            "risk": label,
        }
    )


def base_config(data_path: str, model_path: str, **overrides) -> dict:
    config = {
        "name": "tiny",
        "seed": 0,
        "data": {
            "path": data_path,
            "label": "risk",
            "positive_label": "good",
            "negative_label": "bad",
            "id_column": "applicant_id",
            "sensitive_features": ["sex", "age_group"],
            "derived": {"age_group": {"source": "age", "edges": [0, 25, 200], "labels": ["young", "older"]}},
            "split": {"test_size": 0.3, "stratify": ["sex"]},
            "text": {"template": TEMPLATE},
        },
        "model": {"adapter": "hf-text", "path": model_path, "max_length": 64, "batch_size": 16},
        "auditors": {"performance": {}},
        "gates": [{"metric": "performance.accuracy", "op": ">=", "threshold": 0.0, "source": "smoke"}],
    }
    for key, value in overrides.items():
        config[key] = value
    return config


def write_config(folder: Path, config: dict, name: str = "audit.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int = 200):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(folder)
    return fast


def make_tiny_bert(folder: Path, texts: list[str], num_labels: int = 2, seed: int = 0) -> Path:
    """A random-init 2-layer BERT and a WordPiece tokenizer trained on ``texts``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
        pad_token_id=0,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def credit_frame() -> pd.DataFrame:
    return make_credit_frame()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, credit_frame) -> Path:
    texts = [TEMPLATE.format(**row) for row in credit_frame.to_dict("records")]
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", texts)


@pytest.fixture()
def workspace(tmp_path, credit_frame, tiny_bert) -> Path:
    """A folder with data.csv, a copy-free link to the tiny model, and audit.yaml."""
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path, base_config("data.csv", str(tiny_bert)))
    return tmp_path


@pytest.fixture()
def trained_workspace(tmp_path, credit_frame, trained_tiny_bert) -> Path:
    """As ``workspace``, with the fine-tuned tiny BERT: it predicts both labels, so its label metrics and
    disparities are numbers (the random-init one predicts one label for every row: they are null)."""
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    write_config(tmp_path, base_config("data.csv", str(trained_tiny_bert)))
    return tmp_path


def run_cli(*args: str, cwd: Path | None = None):
    """Run the real console entry point in a subprocess; returns CompletedProcess."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "auditkit.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def trained_tiny_bert(tmp_path_factory, credit_frame, tiny_bert) -> Path:
    """The tiny BERT fine-tuned on the synthetic data: it learns to rely on the purpose word."""
    from auditkit.adapters.hf_text import HfTextAdapter
    from auditkit.config_file import load_config
    from auditkit.data import load_data
    from auditkit.progress import SILENT

    folder = tmp_path_factory.mktemp("trained")
    credit_frame.to_csv(folder / "data.csv", index=False)
    config = base_config("data.csv", "model")
    config["model"]["build"] = {"base": str(tiny_bert), "epochs": 10, "learning_rate": 1e-3, "batch_size": 16}
    loaded = load_config(write_config(folder, config))
    (folder / "model").mkdir()
    HfTextAdapter.build(loaded.model, load_data(loaded.data, 0), folder / "model", 0, SILENT)
    return folder / "model"


@pytest.fixture(scope="module")
def ray_executor(request):
    """A one-node Ray (2 CPUs) for the tests of one module, which Ray's workers get by value."""
    pytest.importorskip("ray")
    from ray import cloudpickle

    from auditkit.execution import ExecutionSettings, open_executor

    cloudpickle.register_pickle_by_value(request.module)  # Ray's workers do not see tests/
    executor = open_executor(ExecutionSettings(engine="ray", address="local", num_cpus=2))
    yield executor
    executor.close()
