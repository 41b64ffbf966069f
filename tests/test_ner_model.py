"""Token classifiers: word pieces back to words, fine-tuning, and the required bias test: a model trained
on data where one group's names were relabelled as non-entities fails the four-fifths gate of the probe."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from auditkit.config import GateConfig
from auditkit.errors import AuditError
from auditkit.gates import evaluate_gates
from auditkit.ner import model as ner_model
from auditkit.ner.fairness import NameProbe, TokenFairnessResult, run_probe
from auditkit.ner.model import fine_tune, open_token_classifier
from auditkit.ner.wordpieces import IGNORE, as_iob2, encode_words, piece_labels, predict_words
from auditkit.progress import SILENT
from tests.ner_support import GROUP_A, GROUP_B, make_sentences, make_tiny_token_bert, vocabulary_texts

LABELS = ["O", "B-location", "I-location", "B-person", "I-person"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_token_bert(tmp_path_factory.mktemp("ner") / "base", vocabulary_texts(), LABELS)


@pytest.fixture(scope="module")
def biased_model(tmp_path_factory, tiny_base) -> Path:
    """Fine-tuned on sentences where every group-B name is tagged O."""
    rows = make_sentences(240, seed=0, relabel=set(GROUP_B))
    out = tmp_path_factory.mktemp("ner") / "biased"
    out.mkdir(exist_ok=True)
    settings = SimpleNamespace(
        batch_size=16,
        learning_rate=3e-3,
        head_learning_rate=None,
        head_epochs=0,
        group_by_length=False,
        weight_decay=0.0,
        warmup_ratio=0.1,
        epochs=8,
    )
    fine_tune(
        tiny_base,
        [r["tokens"] for r in rows],
        [r["tags"] for r in rows],
        out,
        settings=settings,
        max_length=64,
        device=CPU,
        seed=0,
        progress=SILENT,
    )
    return out


def test_first_piece_of_each_word_carries_its_label(tiny_base):
    tokenizer, _ = open_token_classifier(tiny_base, "model.path")
    words = [["Kwame", "flew", "to", "Accra", "."], ["ok"]]
    pieces = encode_words(tokenizer, words, 64)
    assert pieces.n_truncated == 0
    labels = piece_labels(
        pieces, [["B-person", "O", "O", "B-location", "O"], ["O"]], {t: i for i, t in enumerate(LABELS)}
    )
    first = pieces.first_piece[0]
    assert [labels[0][i] for i in first] == [3, 0, 0, 1, 0]
    assert sum(v != IGNORE for v in labels[0]) == 5  # CLS, SEP and later pieces are ignored
    assert first == sorted(first) and first[0] == 1  # after [CLS]


def test_truncated_words_are_outside_and_unscored(tiny_base):
    tokenizer, model = open_token_classifier(tiny_base, "model.path")
    long = [["word"] * 20]
    tags, scores, cut = predict_words(model, tokenizer, long, max_length=8, batch_size=4, device=CPU, progress=SILENT)
    assert cut == 1
    assert tags[0][-1] == "O" and scores[0][-1] is None and scores[0][0] is not None


def test_words_the_tokenizer_drops_are_unscored_and_counted(tiny_base):
    from auditkit.ner.performance import token_performance
    from auditkit.ner.predictions import TokenPredictions

    tokenizer, model = open_token_classifier(tiny_base, "model.path")
    words = [["Kwame", "\u00a0", "to", "\u200b", "."]]  # a no-break space and a zero-width space: no piece
    tags, scores, cut = predict_words(model, tokenizer, words, max_length=64, batch_size=4, device=CPU, progress=SILENT)
    assert cut == 0 and [s is None for s in scores[0]] == [False, True, False, True, False]
    gold = [["B-person", "O", "O", "B-location", "O"]]
    p = TokenPredictions(np.array(["s0"]), words, gold, tags, scores)
    m = token_performance(p, n_boot=20, confidence=0.95, seed=0).metrics
    assert (m["n_unscored_words"], m["n_unscored_entity_words"]) == (2, 1)


def test_bioes_model_output_is_read_as_iob2():
    assert as_iob2(["S-PER", "B-LOC", "E-LOC", "I-ORG", "weird"]) == ["B-PER", "B-LOC", "I-LOC", "I-ORG", "O"]


def test_pickled_or_unlabelled_folders_are_refused(tmp_path, tiny_base):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(AuditError, match=r"no \.safetensors weights \(found pytorch_model\.bin\)"):
        open_token_classifier(tmp_path, "model.path")


def test_relabelled_group_fails_the_four_fifths_gate_on_the_probe(biased_model, tmp_path):
    tokenizer, model = open_token_classifier(biased_model, "model.path")

    def tagger(sentences):
        return predict_words(model, tokenizer, sentences, max_length=64, batch_size=64, device=CPU, progress=SILENT)[0]

    names = tmp_path / "names.csv"
    rows = "".join(f"{a},a\n{b},b\n" for a, b in zip(GROUP_A, GROUP_B, strict=True))
    names.write_text("name,origin\n" + rows, encoding="utf-8")
    report = run_probe(
        NameProbe(names=names.name, group_column="origin", min_names=10),
        tmp_path,
        tagger,
        n_boot=500,
        confidence=0.95,
        seed=0,
    )
    assert report["by_group"]["a"]["recall"] > 0.8
    assert report["by_group"]["b"]["recall"] < 0.2
    result = TokenFairnessResult(
        confidence=0.95, n_boot=500, name_probe={"origin": report}, by_group={}, disparities={}, counterfactual={}
    )
    gates = [
        GateConfig(metric="fairness.name_recall_ratio[origin]", op=">=", threshold=0.8, source="four-fifths rule"),
        GateConfig(metric="fairness.name_recall_difference[origin]", op="<=", threshold=0.1, source="policy"),
    ]
    assert [g.status for g in evaluate_gates(gates, {"fairness": result})] == ["fail", "fail"]


def test_a_model_sharing_no_entity_type_with_the_data_is_refused(tiny_base, tmp_path):
    from auditkit.adapters.hf_token import HfTokenAdapter, HfTokenConfig
    from auditkit.config import DataConfig

    data = tmp_path / "d.conll"
    data.write_text("Acme B-ORG\nsells O\n", encoding="utf-8")
    config = HfTokenConfig(adapter="hf-token", path=tiny_base)
    with pytest.raises(AuditError, match=r"share none with the data's \(ORG\)"):
        HfTokenAdapter.load(config, DataConfig(task="token-classification", path=data))


def test_the_head_trains_alone_first_then_at_its_own_rate(tiny_base, tmp_path, monkeypatch):
    """Head-only epochs leave the encoder as it was; fine-tuning then gives the head its own learning rate."""
    from auditkit.adapters.hf_token import HfTokenBuild

    _, base = open_token_classifier(tiny_base, "model.path")
    encoder_before = {k: v.clone() for k, v in base.base_model.state_dict().items()}
    head_before = base.classifier.weight.detach().clone()
    stages = []
    real_fit = ner_model.fit

    def recording_fit(module, loader, optimizer, **kwargs):
        model = module.model
        stages.append(
            {
                "rates": [g["initial_lr"] for g in optimizer.param_groups],
                "sizes": [len(g["params"]) for g in optimizer.param_groups],
                "encoder_trainable": any(p.requires_grad for p in model.base_model.parameters()),
                "encoder_unchanged": all(
                    torch.equal(v, encoder_before[k]) for k, v in model.base_model.state_dict().items()
                ),
                "head_unchanged": torch.equal(model.classifier.weight, head_before),
            }
        )
        return real_fit(module, loader, optimizer, **kwargs)

    monkeypatch.setattr(ner_model, "fit", recording_fit)
    rows = make_sentences(48, seed=1)
    settings = HfTokenBuild(base=str(tiny_base), epochs=1, learning_rate=1e-5, head_learning_rate=3e-2, head_epochs=2)
    fine_tune(
        tiny_base,
        [r["tokens"] for r in rows],
        [r["tags"] for r in rows],
        tmp_path,
        settings=settings,
        max_length=64,
        device=CPU,
        seed=0,
        progress=SILENT,
    )
    n_head = len(list(base.classifier.parameters()))
    head_stage, full_stage = stages
    assert head_stage["rates"] == [3e-2] and head_stage["sizes"] == [n_head]
    assert not head_stage["encoder_trainable"] and head_stage["encoder_unchanged"] and head_stage["head_unchanged"]
    # after the head-only epochs: the encoder untouched, the head trained, and everything trainable again
    assert full_stage["encoder_trainable"] and full_stage["encoder_unchanged"] and not full_stage["head_unchanged"]
    assert full_stage["rates"] == [1e-5, 3e-2]
    assert full_stage["sizes"] == [len(list(base.base_model.parameters())), n_head]


def test_the_head_settings_enter_the_build_key():
    from auditkit.config_file import load_config
    from auditkit.data import load_data
    from auditkit.model_store import build_key

    config = load_config(Path(__file__).parents[1] / "audits" / "ner_people.yaml")
    data = load_data(config.data, config.seed)
    keys = {build_key(config, data)}
    for change in ({"head_epochs": config.model.build.head_epochs + 1}, {"head_learning_rate": 0.123}):
        build = config.model.build.model_copy(update=change)
        changed = config.model_copy(update={"model": config.model.model_copy(update={"build": build})})
        keys.add(build_key(changed, data))
    assert len(keys) == 3


def test_length_grouped_batches_cover_every_sentence_once_with_little_padding():
    import random

    from auditkit.ner.wordpieces import LengthGroupedBatches

    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]
    batches = LengthGroupedBatches(lengths, 16, seed=0, group=10)
    first, second = list(batches), list(batches)
    assert len(first) == len(batches) == 63
    assert sorted(i for b in first for i in b) == list(range(1000))
    assert first != second  # a new order every epoch ...
    assert list(LengthGroupedBatches(lengths, 16, seed=0, group=10)) == first  # ... the same for the same seed
    padded = sum(max(lengths[i] for i in b) * len(b) for b in first)
    assert padded < 1.1 * sum(lengths)
