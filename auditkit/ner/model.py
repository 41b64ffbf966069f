"""Open and fine-tune transformers token classifiers (safetensors only, no remote code, local files only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from auditkit.adapters.hf_text import SAFE, check_model_folder  # noqa: E402
from auditkit.errors import AuditError  # noqa: E402
from auditkit.ner.tags import split_tag  # noqa: E402
from auditkit.ner.wordpieces import TokenLogits, label_set, length_grouped_loader, token_loss, training_data  # noqa: E402
from auditkit.progress import ProgressReporter  # noqa: E402
from auditkit.training import fit, linear_warmup_schedule, seed_everything  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def open_token_classifier(path: Path, key: str, **kwargs: Any) -> tuple[Any, Any]:
    """Fast tokenizer and ``*ForTokenClassification`` model from ``path``; AuditError when unusable."""
    check_model_folder(path, key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **SAFE)
        model = AutoModelForTokenClassification.from_pretrained(path, use_safetensors=True, **SAFE, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise AuditError(f"{key} {path}: cannot load a token classifier: {str(exc).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise AuditError(f"{key} {path}: needs a fast tokenizer (tokenizer.json) to map word pieces to words")
    if not kwargs:
        check_labels(model, path, key)
    return tokenizer, model


def check_labels(model: Any, path: Path, key: str) -> None:
    """Every output label must be O or <prefix>-<type>, else predictions cannot be read as entities."""
    for label in (model.config.id2label or {}).values():
        try:
            split_tag(str(label))
        except ValueError:
            raise AuditError(
                f"{key} {path}: output label '{label}' is not O or B-/I-/E-/S-<type>; "
                "auditkit reads entities from IOB2 or BIOES labels"
            ) from None


def model_types(model: Any) -> set[str]:
    return {kind for label in model.config.id2label.values() if (kind := split_tag(str(label))[1]) is not None}


def fine_tune(
    base: Path,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]],
    out_dir: Path,
    *,
    settings: Any,
    max_length: int,
    device: torch.device,
    seed: int,
    progress: ProgressReporter,
) -> None:
    """A token-classification head on ``base`` trained on IOB2 ``tags``, saved with its tokenizer in ``out_dir``.

    The fresh head first learns alone on the frozen encoder for ``settings.head_epochs``, then the whole
    model is fine-tuned; the head keeps its own, higher ``settings.head_learning_rate`` in both stages, as
    one small learning rate with warm-up and decay starves a randomly initialised head.
    """
    seed_everything(seed)
    labels = label_set(tags)
    tokenizer, model = open_token_classifier(
        base,
        "model.build.base",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    length = min(max_length, int(getattr(model.config, "max_position_embeddings", max_length)))
    data = training_data(tokenizer, sentences, tags, model.config.label2id, length)
    if settings.group_by_length:
        loader = length_grouped_loader(data, settings.batch_size, seed)
    else:
        loader = data.loader(settings.batch_size, seed)
    encoder, head = split_parameters(model)
    head_rate = settings.head_learning_rate or settings.learning_rate
    if settings.head_epochs:
        for p in encoder:
            p.requires_grad_(False)
        optimizer = torch.optim.AdamW(head, lr=head_rate, weight_decay=settings.weight_decay)
        schedule = linear_warmup_schedule(optimizer, settings.head_epochs * len(loader), settings.warmup_ratio)
        fit(
            TokenLogits(model),
            loader,
            optimizer,
            epochs=settings.head_epochs,
            device=device,
            progress=progress,
            description="Training the token classifier's head",
            scheduler=schedule,
            loss_fn=token_loss,
        )
        for p in encoder:
            p.requires_grad_(True)
    optimizer = fine_tuning_optimizer(encoder, head, settings.learning_rate, head_rate, settings.weight_decay)
    schedule = linear_warmup_schedule(optimizer, settings.epochs * len(loader), settings.warmup_ratio)
    fit(
        TokenLogits(model),
        loader,
        optimizer,
        epochs=settings.epochs,
        device=device,
        progress=progress,
        description="Fine-tuning token classifier",
        scheduler=schedule,
        loss_fn=token_loss,
    )
    model.to("cpu").save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def split_parameters(model: Any) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """The pretrained encoder's parameters and the rest (the fresh classification head)."""
    encoder = list(model.base_model.parameters())
    known = {id(p) for p in encoder}
    return encoder, [p for p in model.parameters() if id(p) not in known]


def fine_tuning_optimizer(
    encoder: list[torch.nn.Parameter],
    head: list[torch.nn.Parameter],
    learning_rate: float,
    head_learning_rate: float,
    weight_decay: float,
) -> torch.optim.AdamW:
    """AdamW with two parameter groups: the encoder at ``learning_rate``, the head at its own rate."""
    groups = [{"params": encoder, "lr": learning_rate}, {"params": head, "lr": head_learning_rate}]
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)
