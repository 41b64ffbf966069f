"""DP token heads: Opacus' accountant, per-sentence loss, entity F1 per run, sentence-level MIA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from transformers import AutoModel

from auditkit.ner.metrics import count_entities, entity_report
from auditkit.ner.model import open_token_classifier
from auditkit.ner.privacy import head_outputs, train_head, word_data, word_features, word_labels
from auditkit.ner.wordpieces import label_set
from auditkit.privacy.mia import loss_attack
from auditkit.progress import SILENT
from tests.ner_support import make_sentences, make_tiny_token_bert, vocabulary_texts

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = make_tiny_token_bert(tmp_path_factory.mktemp("dp") / "base", vocabulary_texts(), ["O", "B-person"])
    tokenizer, _ = open_token_classifier(folder, "model.path")
    encoder = AutoModel.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    train, test = make_sentences(200, seed=3), make_sentences(100, seed=4)
    labels = label_set([r["tags"] for r in train])
    label2id = {t: i for i, t in enumerate(labels)}
    out = {}
    for name, rows in (("train", train), ("test", test)):
        words = [r["tokens"] for r in rows]
        out[name] = (
            word_features(encoder, tokenizer, words, max_length=64, device=CPU),
            word_labels(tokenizer, words, [r["tags"] for r in rows], label2id, 64),
            [r["tags"] for r in rows],
        )
    return out, labels


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_dp_head_epsilon_equals_opacus_accountant(setup, accountant):
    data, labels = setup
    feats, y, _ = data["train"]
    run = train_head(
        word_data(feats, y),
        feats[0].shape[1],
        len(labels),
        target_epsilon=3.0,
        delta=1e-3,
        epochs=2,
        learning_rate=1e-2,
        batch_size=32,
        max_grad_norm=1.0,
        accountant=accountant,
        seed=0,
        device=CPU,
        progress=SILENT,
    )
    assert run.epsilon == pytest.approx(3.0, rel=0.05)
    if accountant == "rdp":
        independent = RDPAccountant()
        independent.history = list(run.history)
        assert run.epsilon == pytest.approx(independent.get_epsilon(1e-3), rel=1e-9)
    assert run.steps > 0 and run.noise_multiplier > 0


def test_runs_score_entities_and_members(setup):
    data, labels = setup
    feats, y, _ = data["train"]
    id2label = dict(enumerate(labels))
    run = train_head(
        word_data(feats, y),
        feats[0].shape[1],
        len(labels),
        target_epsilon=None,
        delta=1e-3,
        epochs=20,
        learning_rate=3e-2,
        batch_size=32,
        max_grad_norm=1.0,
        accountant="rdp",
        seed=0,
        device=CPU,
        progress=SILENT,
    )
    test_feats, test_y, test_tags = data["test"]
    tags, test_loss = head_outputs(run.head, test_feats, test_y, id2label, CPU)
    report = entity_report(count_entities(test_tags, tags), 100, 0.95, 0)
    assert report["metrics"]["f1"] is not None and report["metrics"]["f1"] > 0.3
    _, train_loss = head_outputs(run.head, feats, y, id2label, CPU)
    attack = loss_attack(train_loss[:100], test_loss, 1e-3)
    assert 0.0 <= attack.auc <= 1.0 and attack.n_members == 100
    assert np.isfinite(train_loss).all()
