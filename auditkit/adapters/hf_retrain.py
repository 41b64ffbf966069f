"""What a retraining (DP) run of an ``hf-text`` model trains, and its inputs computed once.

Frozen bottom layers are deterministic in eval mode, so their outputs are computed once
per split and every run (each epsilon and the non-private reference) trains only the
top layers on those cached activations. :meth:`HfTextAdapter.trainable` calls this.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from auditkit.data import AuditData, Split
from auditkit.errors import AuditError
from auditkit.progress import ProgressReporter
from auditkit.tokens import encode, pad
from auditkit.training import Trainable, TrainingData, seed_everything


class TensorRows(Dataset):
    """Examples (tensor, ..., label) kept in memory."""

    def __init__(self, columns: Sequence[Sequence[torch.Tensor]], labels: np.ndarray) -> None:
        self.columns, self.labels = columns, torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return (*(c[index] for c in self.columns), self.labels[index])


def _pad_collate(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Pad (tokens (L, ...), mask (L), label) items to the longest in the batch: token ids or cached states."""
    first = items[0][0]
    width = max(i[0].shape[0] for i in items)
    tokens = first.new_zeros((len(items), width, *first.shape[1:]))
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (t, m, _) in enumerate(items):
        tokens[row, : t.shape[0]] = t
        mask[row, : m.shape[0]] = m
    return tokens, mask, torch.stack([i[2] for i in items])


class TopOfBert(torch.nn.Module):
    """The top ``k`` transformer layers, pooler and classifier of a BERT-family classifier.

    ``pooling="mean"`` replaces the [CLS] pooler by the mean of the token states, as
    sentence-embedding models are trained to be read (a linear probe when ``k`` is 0).
    """

    def __init__(self, model: torch.nn.Module, k: int, pooling: str = "pooler") -> None:
        super().__init__()
        self.pooling = pooling
        base = model.base_model
        layers = list(base.encoder.layer)
        self.layers = torch.nn.ModuleList(copy.deepcopy(layers[len(layers) - k :]) if k else [])
        self.pooler = copy.deepcopy(base.pooler) if pooling == "pooler" else None  # unused weights break Opacus
        self.dropout = torch.nn.Dropout(getattr(model.config, "hidden_dropout_prob", 0.1))
        self.classifier = copy.deepcopy(model.classifier)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            out = layer(hidden, additive)
            hidden = out[0] if isinstance(out, tuple) else out
        if self.pooling == "mean":
            weights = mask.to(hidden.dtype)[:, :, None]
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        else:
            pooled = self.pooler(hidden)
        return self.classifier(self.dropout(pooled))


class FrozenBottom(torch.nn.Module):
    """No caching: the frozen bottom runs inside every step (for the caching benchmark)."""

    def __init__(self, model: torch.nn.Module, k: int, pooling: str = "pooler") -> None:
        super().__init__()
        self.top = TopOfBert(model, k, pooling)  # copies the top before the bottom is frozen
        self.model, self.k = copy.deepcopy(model).eval().requires_grad_(False), k

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            hidden = _bottom_hidden(self.model, input_ids, mask, self.k)
        return self.top(hidden, mask)


def _bottom_hidden(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    out = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return out.hidden_states[len(out.hidden_states) - 1 - k]


def text_trainable(
    base: torch.nn.Module,
    tokenizer: object,
    data: AuditData,
    max_length: int,
    top_layers: int,
    seed: int,
    device: torch.device,
    progress: ProgressReporter,
    cache: bool = True,
    pooling: str = "pooler",
) -> Trainable:
    """Train the top ``top_layers`` layers of ``base`` (a fresh classifier head, seeded) on cached activations."""
    if not (hasattr(base.base_model, "encoder") and hasattr(base.base_model, "pooler") and hasattr(base, "classifier")):
        raise AuditError("auditors.privacy: activation caching needs a BERT-family model (encoder, pooler, classifier)")
    n_layers = len(base.base_model.encoder.layer)
    if not 0 <= top_layers <= n_layers:
        raise AuditError(f"auditors.privacy.train_top_layers: the model has {n_layers} layers")
    base = base.to(device).eval()
    seed_everything(seed)
    template = TopOfBert(base, top_layers, pooling) if cache else FrozenBottom(base, top_layers, pooling)

    def fresh() -> torch.nn.Module:
        return copy.deepcopy(template).train()

    def examples(split: Split) -> TrainingData:
        ids = encode(tokenizer, split.texts or [], max_length).input_ids
        if not cache:
            rows = [torch.as_tensor(i) for i in ids]
            masks = [torch.ones(len(i), dtype=torch.long) for i in ids]
            return TrainingData(TensorRows([rows, masks], split.y), _pad_collate)
        hidden: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        order = np.argsort([len(i) for i in ids])
        with progress.task(f"Caching activations ({split.name})", total=len(ids)) as advance, torch.inference_mode():
            for start in range(0, len(order), 64):
                rows = order[start : start + 64]
                batch_ids, mask = pad([ids[i] for i in rows], getattr(tokenizer, "pad_token_id", 0) or 0)
                states = _bottom_hidden(base, batch_ids.to(device), mask.to(device), top_layers).float().cpu()
                for k, i in enumerate(rows):
                    hidden[i] = states[k, : len(ids[i])].clone()
                advance(len(rows))
        masks = [torch.ones(len(i), dtype=torch.long) for i in ids]
        return TrainingData(TensorRows([hidden, masks], split.y), _pad_collate)

    head = "pooler" if pooling == "pooler" else "mean pooling"
    what = f"top {top_layers} of {n_layers} layers, {head} and a fresh classifier" + (
        " on cached activations" if cache else ", bottom recomputed every step"
    )
    return Trainable(fresh, examples(data.train), examples(data.test), what)
