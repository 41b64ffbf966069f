"""LoRA for DP runs of an ``hf-text`` model: low-rank adapters on the attention projections.

Written as plain ``nn.Linear`` A/B pairs around the frozen projections rather than through
``peft``, because Opacus computes per-sample gradients for ``nn.Linear`` in every mode
(hooks, ew, ghost) and only the adapter weights and the classification head are trainable,
so only they get per-sample gradients and noise. Nothing can be cached: every step runs
the whole (frozen) transformer, which is what makes a LoRA run dearer than a probe on CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from auditkit.adapters.hf_retrain import TensorRows, stack_labels
from auditkit.data import AuditData, Split
from auditkit.errors import AuditError
from auditkit.progress import ProgressReporter
from auditkit.tokens import encode
from auditkit.training import Trainable, TrainingData, seed_everything

#: Attention projection names across BERT, RoBERTa, ELECTRA (query/value), DistilBERT (q_lin/v_lin)
#: and DeBERTa-v2 (query_proj/value_proj): LoRA's usual targets (Hu et al. 2021).
TARGETS = ("query", "value", "q_lin", "v_lin", "query_proj", "value_proj")


class LoraLinear(torch.nn.Module):
    """``base(x) + scale * B(A(x))`` with ``base`` frozen and ``B`` starting at zero (the model is unchanged)."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_a = torch.nn.Linear(base.in_features, rank, bias=False)
        self.lora_b = torch.nn.Linear(rank, base.out_features, bias=False)
        torch.nn.init.kaiming_uniform_(self.lora_a.weight, a=5**0.5)
        torch.nn.init.zeros_(self.lora_b.weight)
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_b(self.lora_a(x)) * self.scale


class LoraClassifier(torch.nn.Module):
    """``module(input_ids, attention_mask) -> logits`` of a sequence classifier with LoRA inserted."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def add_lora(model: torch.nn.Module, rank: int, alpha: float) -> int:
    """Freeze ``model``'s encoder, wrap its attention projections; returns how many were wrapped."""
    base = getattr(model, model.base_model_prefix)
    base.requires_grad_(False)
    wrapped = 0
    for module in list(base.modules()):
        for name, child in list(module.named_children()):
            if name in TARGETS and isinstance(child, torch.nn.Linear):
                setattr(module, name, LoraLinear(child, rank, alpha))
                wrapped += 1
    return wrapped


def lora_module(base: torch.nn.Module, rank: int, seed: int) -> LoraClassifier:
    """A copy of ``base`` with LoRA (rank ``rank``, alpha 2 x rank, seeded) on every attention query/value
    projection; its head stays trainable."""
    seed_everything(seed)
    template = copy.deepcopy(base).eval()
    if not add_lora(template, rank, 2.0 * rank):
        raise AuditError("auditors.privacy.run_kind: lora found no attention projections in this model")
    return LoraClassifier(template)


def lora_trainable(
    base: torch.nn.Module,
    tokenizer: object,
    data: AuditData,
    max_length: int,
    rank: int,
    seed: int,
    progress: ProgressReporter,
) -> Trainable:
    """LoRA (rank ``rank``, alpha 2 x rank) on every attention query/value projection, and the head."""
    module = lora_module(base, rank, seed)
    pad_id = getattr(tokenizer, "pad_token_id", 0) or 0

    def fresh() -> torch.nn.Module:
        return copy.deepcopy(module).train()

    def examples(split: Split) -> TrainingData:
        return id_rows(encode(tokenizer, split.texts or [], max_length).input_ids, split.y, pad_id)

    with progress.task("Tokenising for LoRA", total=1) as advance:
        train, test = examples(data.train), examples(data.test)
        advance(1)
    n_layers = getattr(base.config, "num_hidden_layers", "?")
    what = f"LoRA rank {rank} on the query/value projections of all {n_layers} layers and a fresh classifier"
    return Trainable(fresh, train, test, what)


def id_rows(ids: list[list[int]], labels: np.ndarray | Sequence[torch.Tensor], pad_id: int) -> TrainingData:
    """Token ids with their labels as examples ``(input_ids, attention_mask, label)``; nothing is cached."""

    def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        width = max(len(i[0]) for i in items)
        batch = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (tokens, _) in enumerate(items):
            batch[row, : len(tokens)], mask[row, : len(tokens)] = tokens, 1
        return batch, mask, stack_labels([i[1] for i in items], width)

    return TrainingData(TensorRows([[torch.as_tensor(i) for i in ids]], labels), collate)
