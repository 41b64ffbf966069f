"""What a retraining (DP) run of an ``hf-text`` model trains, and its inputs computed once.

Frozen bottom layers are deterministic in eval mode, so their outputs are computed once
per split and every run (each epsilon and the non-private reference) trains only the
top layers and the family's own head on those cached activations. Where the standalone top
does not reproduce the model (checked on the data), the whole model is recomputed in every
step with its bottom frozen instead. :meth:`HfTextAdapter.trainable` calls this; the
per-family knowledge lives in :mod:`auditkit.adapters.hf_families`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from auditkit.adapters.hf_families import Bottom, FullRecompute, Top, family_of, model_inputs, split
from auditkit.data import AuditData, Split
from auditkit.errors import AuditError
from auditkit.progress import ProgressReporter
from auditkit.tokens import encode, pad
from auditkit.training import IGNORE, Trainable, TrainingData, seed_everything


class TensorRows(Dataset):
    """Examples (tensor, ..., label) kept in memory; a label is one id, or one per position (a sentence)."""

    def __init__(self, columns: Sequence[Sequence[torch.Tensor]], labels: np.ndarray | Sequence[torch.Tensor]) -> None:
        self.columns = columns
        self.labels = torch.as_tensor(labels, dtype=torch.long) if isinstance(labels, np.ndarray) else labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return (*(c[index] for c in self.columns), self.labels[index])


def pad_collate(items: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Pad (tokens (L, ...), mask (L), label) items to the longest in the batch: token ids or cached states;
    per-position labels are padded with IGNORE."""
    first = items[0][0]
    width = max(i[0].shape[0] for i in items)
    tokens = first.new_zeros((len(items), width, *first.shape[1:]))
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (t, m, _) in enumerate(items):
        tokens[row, : t.shape[0]] = t
        mask[row, : m.shape[0]] = m
    return tokens, mask, stack_labels([i[2] for i in items], width)


def stack_labels(labels: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """One label per example stacked, or per-position labels padded to ``width`` with IGNORE."""
    if labels[0].ndim == 0:
        return torch.stack(list(labels))
    out = torch.full((len(labels), width), IGNORE, dtype=torch.long)
    for row, y in enumerate(labels):
        out[row, : len(y)] = y
    return out


class TopLayers:
    """The top ``top_layers`` layers and head of ``base`` to train, and token ids made into its examples:
    the frozen bottom's activations computed once (where the top runs standalone), else the ids."""

    def __init__(
        self,
        base: torch.nn.Module,
        pad_id: int,
        sample: list[list[int]],  # a few inputs to check that the copied top reproduces the model
        top_layers: int,
        device: torch.device,
        progress: ProgressReporter,
        cache: bool = True,
        pooling: str = "pooler",
    ) -> None:
        self.bottom, top = split(base.to(device).eval(), top_layers, pooling)
        self.pad_id, self.device, self.progress = pad_id, device, progress
        self.standalone = cache and runs_standalone(self.bottom, top, sample[:8], pad_id, device)
        self.template = opacus_ready(top if self.standalone else FullRecompute(base, top_layers, pooling))
        n_layers = len(family_of(base.config).layers(base))
        self.description = f"top {top_layers} of {n_layers} layers"
        if top.frozen:
            self.note = " (relative-position projections frozen: they read unbatched position embeddings)"
        else:
            self.note = ""
        if self.standalone:
            self.note += " on cached activations"
        elif cache:
            self.note += (
                "; the top layers do not run standalone for this model, so the whole model is recomputed every step"
            )
        else:
            self.note += ", the whole model recomputed every step with the bottom frozen"

    def fresh(self) -> torch.nn.Module:
        return copy.deepcopy(self.template).train()

    def examples(self, ids: list[list[int]], labels: np.ndarray | Sequence[torch.Tensor], name: str) -> TrainingData:
        masks = [torch.ones(len(i), dtype=torch.long) for i in ids]
        if not self.standalone:
            return TrainingData(TensorRows([[torch.as_tensor(i) for i in ids], masks], labels), pad_collate)
        hidden: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        order = np.argsort([len(i) for i in ids])
        with (
            self.progress.task(f"Caching activations ({name})", total=len(ids)) as advance,
            torch.inference_mode(),
        ):
            for start in range(0, len(order), 64):
                rows = order[start : start + 64]
                batch_ids, mask = pad([ids[i] for i in rows], self.pad_id)
                states = self.bottom(batch_ids.to(self.device), mask.to(self.device)).float().cpu()
                for k, i in enumerate(rows):
                    hidden[i] = states[k, : len(ids[i])].clone()
                advance(len(rows))
        return TrainingData(TensorRows([hidden, masks], labels), pad_collate)


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
    """Train the top ``top_layers`` layers and the head of ``base`` (seeded) on cached activations."""
    seed_everything(seed)
    ids_of = {s.name: encode(tokenizer, s.texts or [], max_length).input_ids for s in (data.train, data.test)}
    pad_id = getattr(tokenizer, "pad_token_id", 0) or 0
    top = TopLayers(base, pad_id, ids_of[data.train.name], top_layers, device, progress, cache, pooling)

    def examples(split_: Split) -> TrainingData:
        return top.examples(ids_of[split_.name], split_.y, split_.name)

    head = "its own classification head" if pooling == "pooler" else "mean pooling and its last linear layer"
    what = f"{top.description} and {head}{top.note}"
    return Trainable(top.fresh, examples(data.train), examples(data.test), what)


def runs_standalone(bottom: Bottom, top: Top, ids: list[list[int]], pad_id: int, device: torch.device) -> bool:
    """Whether the copied top reproduces the model's last hidden states on these examples."""
    if not ids:
        return True
    batch, mask = pad(ids, pad_id)
    batch, mask = batch.to(device), mask.to(device)
    model = bottom.model
    was_training = top.training
    top.eval()
    try:
        with torch.inference_mode():
            expected = model.base_model(**model_inputs(model, batch, mask))[0]
            got = top.stack(bottom(batch, mask), mask)
    except (RuntimeError, TypeError, ValueError, IndexError):
        return False
    finally:
        top.train(was_training)
    keep = mask.bool()
    return bool(torch.allclose(got[keep], expected[keep], rtol=1e-4, atol=1e-4 * float(expected.abs().max()) + 1e-6))


def opacus_ready(module: torch.nn.Module) -> torch.nn.Module:
    """The module Opacus can make private: fixed where Opacus knows how, else one clear error."""
    from opacus.validators import ModuleValidator

    module.train()
    if ModuleValidator.validate(module, strict=False):
        module = ModuleValidator.fix(module)
    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise AuditError(f"auditors.privacy: Opacus cannot train this model's top layers: {errors[0]}")
    return module
