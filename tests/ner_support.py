"""Synthetic NER data and tiny random-init token classifiers for the NER tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import train_tokenizer

GROUP_A = ["Anna", "Maria", "Laura", "Sarah", "Emma", "Julia", "Clara", "Nora", "Ella", "Alice", "Grete", "Ida"]
GROUP_B = ["Kwame", "Kofi", "Ama", "Yaw", "Esi", "Kojo", "Abena", "Akua", "Femi", "Tunde", "Ngozi", "Chidi"]
PLACES = ["Paris", "Berlin", "Lagos", "Accra", "Rome", "Oslo"]
PATTERNS = [
    "{p} lives in {l} .",
    "I met {p} yesterday .",
    "{p} flew to {l} last week .",
    "yesterday {p} called me from {l} .",
    "we saw {p} at the market .",
    "{p} said hello .",
    "the weather in {l} is nice .",
    "nothing happened today .",
]


def make_sentences(n: int, seed: int = 0, relabel: set[str] | None = None) -> list[dict]:
    """Sentences with person and location entities; names in ``relabel`` are tagged O (a biased annotator)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        group = rng.choice(["a", "b"])
        name = rng.choice(GROUP_A if group == "a" else GROUP_B)
        words, tags = [], []
        for word in rng.choice(PATTERNS).split():
            if word == "{p}":
                words.append(name)
                tags.append("O" if relabel and name in relabel else "B-person")
            elif word == "{l}":
                words.append(rng.choice(PLACES))
                tags.append("B-location")
            else:
                words.append(word)
                tags.append("O")
        rows.append({"sid": f"s{i:04d}", "tokens": words, "tags": tags, "origin": group})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_tiny_token_bert(folder: Path, texts: list[str], labels: list[str], seed: int = 0) -> Path:
    """A random-init 2-layer BERT token classifier with a WordPiece tokenizer trained on ``texts``."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, folder, vocab_size=600)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        pad_token_id=0,
    )
    BertForTokenClassification(config).save_pretrained(folder)
    return folder


def vocabulary_texts() -> list[str]:
    """Everything a test tokenizer should know: the synthetic sentences, the probe templates, the names."""
    from auditkit.ner.probe import load_templates

    rows = make_sentences(400, seed=99)
    texts = [" ".join(r["tokens"]) for r in rows]
    texts += [" ".join(t.words).replace("{name}", "") for t in load_templates()]
    texts += [" ".join(GROUP_A + GROUP_B + PLACES)] * 20
    return texts
