"""What a retraining (DP) run of an ``hf-token`` model trains: the base model with a fresh
token-classification head, as a probe (the head on the frozen encoder's cached word-piece states),
its top layers on cached activations of the frozen bottom, or LoRA adapters. The machinery is
``hf-text``'s (:mod:`auditkit.adapters.hf_retrain`, :mod:`auditkit.adapters.hf_lora`); only the examples
differ: a sentence, labelled at each word's first piece. :meth:`HfTokenAdapter.trainable` calls this.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch

from auditkit.adapters.capabilities import RetrainRequest
from auditkit.adapters.hf_lora import id_rows, lora_module
from auditkit.adapters.hf_retrain import TopLayers
from auditkit.ner.model import open_token_classifier
from auditkit.ner.privacy import EntityF1, SentenceLoss, sentence_rows
from auditkit.ner.reader import Sentences
from auditkit.ner.wordpieces import label_set
from auditkit.progress import ProgressReporter
from auditkit.training import Trainable, TrainingData, seed_everything


def token_trainable(
    base: Path,
    train: Sentences,
    test: Sentences,
    request: RetrainRequest,
    max_length: int,
    device: torch.device,
    progress: ProgressReporter,
) -> Trainable:
    """A seeded fresh head on ``base`` (with its own tokenizer), and the sentences as examples."""
    labels = list(request.labels) or label_set(train.tags)
    seed_everything(request.seed)  # the fresh head is drawn here
    tokenizer, model = open_token_classifier(
        base,
        "auditors.privacy.base",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={t: i for i, t in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    length = min(max_length, int(getattr(model.config, "max_position_embeddings", max_length)))
    pad_id = tokenizer.pad_token_id or 0
    head = f"a fresh token-classification head ({len(labels)} tags)"

    def rows(sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None) -> tuple[list, list]:
        return sentence_rows(tokenizer, sentences, tags, labels, length)

    Words = Sequence[Sequence[str]]
    if request.kind == "lora":
        template: torch.nn.Module = lora_module(model, request.lora_rank, request.seed)
        n_layers = getattr(model.config, "num_hidden_layers", "?")
        what = f"LoRA rank {request.lora_rank} on the query/value projections of all {n_layers} layers and {head}"

        def encode(sentences: Words, tags: Words | None, name: str) -> TrainingData:
            return id_rows(*rows(sentences, tags), pad_id)

    else:
        k = 0 if request.kind == "probe" else request.top_layers
        if k == 0:  # a probe is a linear read-out of frozen states; dropout there cost a third of each step
            model.dropout.p = 0.0
        sample = rows(train.tokens[:8], None)[0]
        top = TopLayers(model, pad_id, sample, k, device, progress, request.cache_activations, "tokens")
        template = top.template
        what = f"{head} on the frozen encoder{top.note}" if k == 0 else f"{top.description} and {head}{top.note}"

        def encode(sentences: Words, tags: Words | None, name: str) -> TrainingData:
            return top.examples(*rows(sentences, tags), name)

    def fresh() -> torch.nn.Module:  # only the template travels with a task, not the frozen encoder
        return copy.deepcopy(template).train()

    return Trainable(
        fresh,
        encode(train.tokens, train.tags, "train"),
        encode(test.tokens, test.tags, "test"),
        what,
        loss=SentenceLoss(),
        score=EntityF1(tuple(labels)),
        encode=lambda sentences: encode(sentences, None, "sentences"),
    )
