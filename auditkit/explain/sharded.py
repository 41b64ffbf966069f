"""Attributions sharded over workers that each load the model once.

The examples are dealt out in order of length, so every shard holds short and long texts
alike and finishes at about the same time; each shard's engine still groups its own
examples by length into passes. In this process (one worker) the one shard is every example
and the engine is the one built on the run's adapter: the default path is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from auditkit.progress import SILENT, ProgressReporter

if TYPE_CHECKING:
    from auditkit.data import AuditData, Split
    from auditkit.execution.base import Executor
    from auditkit.explain.common import Attribution
    from auditkit.ner.reader import Sentences


@dataclass
class EngineFactory:
    """Builds an engine: in this process the run's own (``engine``, on the live adapter), on a worker
    one on a model the worker loads itself from the model folder (pickling drops the live adapter
    and engine, so a worker never gets a copy of them)."""

    engine_cls: type
    adapter_cls: type
    model_config: Any
    data_config: Any
    data: AuditData
    options: Any
    adapter: Any = None
    engine: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "adapter": None, "engine": None}

    def __call__(self) -> Any:
        if self.engine is not None:
            return self.engine
        adapter = self.adapter
        if adapter is None:  # a worker: its own model, on its own device (a GPU when it was given one)
            adapter = self.adapter_cls.load(self.model_config, self.data_config)
        return self.engine_cls.create(adapter, self.data, self.options)


@dataclass(frozen=True)
class Shard:
    positions: np.ndarray
    targets: list[Any]  # per example, what the engine explains (see ``Engine.explain``)
    f_inputs: np.ndarray | None


@dataclass
class ExplainShard:
    """``engine.explain`` over one shard; picklable (progress stays in this process)."""

    split: Split | Sentences
    tolerance: float
    schedule: list[int]
    progress: ProgressReporter = SILENT

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": SILENT}

    def __call__(self, engine: Any, shard: Shard) -> tuple[list[Attribution], list[str | None]]:
        return engine.explain(
            self.split, shard.positions, shard.targets, shard.f_inputs, self.tolerance, self.progress, self.schedule
        )


def deal(lengths: Sequence[int], n: int) -> list[np.ndarray]:
    """Indices 0..len-1 dealt round-robin in order of length into ``n`` shards, each kept sorted."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    n = max(1, min(n, len(order)))
    return [np.sort(order[k::n]) for k in range(n)]


def example_sizes(split: Split | Sentences, positions: np.ndarray) -> list[int]:
    """Characters of each example (its text, or its words for sentences of words), to deal even shards."""
    texts = getattr(split, "texts", None)
    if texts is not None:
        return [len(texts[i]) for i in positions]
    words = getattr(split, "tokens", None)
    if words is not None:
        return [sum(len(w) + 1 for w in words[i]) for i in positions]
    return [0] * len(positions)


def _plain(target: Any) -> Any:
    """A numpy integer as a Python int (the classifiers' targets); any other target as it is."""
    return int(target) if isinstance(target, np.integer) else target


def explain_sharded(
    executor: Executor,
    factory: EngineFactory,
    split: Split | Sentences,
    positions: np.ndarray,
    targets: Sequence[Any],
    f_inputs: np.ndarray | None,
    tolerance: float,
    schedule: Sequence[int],
    progress: ProgressReporter,
) -> tuple[list[Attribution], list[str | None]]:
    """Attributions of ``positions`` in their order, computed in as many shards as the executor has workers."""
    parts = deal(example_sizes(split, positions), executor.workers)
    shards = [
        Shard(positions[p], [_plain(targets[i]) for i in p], None if f_inputs is None else f_inputs[p]) for p in parts
    ]
    results = executor.map_with_state(
        factory, ExplainShard(split, tolerance, list(schedule), progress), shards, gpu=True
    )
    attributions: list[Any] = [None] * len(positions)
    texts: list[str | None] = [None] * len(positions)
    for p, (shard_attributions, shard_texts) in zip(parts, results, strict=True):
        for i, a, t in zip(p, shard_attributions, shard_texts, strict=True):
            attributions[i], texts[i] = a, t
    return attributions, texts
