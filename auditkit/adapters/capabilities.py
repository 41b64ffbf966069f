"""What a model can do, as small abstract types an adapter inherits.

Every adapter is a :class:`Scorer`. One that can be explained adds an :class:`Attributable`
kind: by gradients (:class:`TextAttributable`, :class:`TabularAttributable`) or, for black-box
models, by perturbing data columns (:class:`FeatureAttributable`); one that
can be retrained for DP runs adds :class:`Retrainable`; one that can count a dataset too large for
memory without loading it adds :class:`CountScorer`. Auditors name the capability they need
(``Auditor.requires``) and engines are registered for a capability type and found through the
adapter's class hierarchy, so a subclass or a third-party adapter gets them with no edit here.
A new kind of attribution is a new subclass of :class:`Attributable` plus an engine registered for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from auditkit.config import ModelConfigBase
    from auditkit.data import AuditData, Split
    from auditkit.execution.base import Executor
    from auditkit.ner.wordpieces import WordPieces
    from auditkit.predictions import BasePredictions
    from auditkit.progress import ProgressReporter
    from auditkit.streaming.counts import CountedPredictions
    from auditkit.streaming.source import StreamedSplit
    from auditkit.tokens import EncodedText
    from auditkit.training import Trainable


class Capability(ABC):
    """Base of every capability; ``capability`` is its name in ``auditkit list`` and in errors."""

    capability: ClassVar[str]


class Scorer(Capability):
    """Scores a split: every adapter has this."""

    capability = "score"

    @abstractmethod
    def predict(self, split: Split, progress: ProgressReporter) -> BasePredictions:
        """Per-row class probabilities, or what the task's model gives (token tags per word)."""


class CountScorer(Capability):
    """Counts a streamed split (``data.streaming``) in one pass without loading its rows: the
    group-by counts performance and fairness need, read by ``executor`` (pyarrow or Ray Data)."""

    capability = "count"

    @abstractmethod
    def count(self, split: StreamedSplit, executor: Executor, progress: ProgressReporter) -> CountedPredictions: ...


class Attributable(Capability):
    """Something an attribution engine can explain; the subclass says through what."""

    capability = "attribute"
    device: torch.device


class GradientAttributable(Attributable):
    """A differentiable forward function an attribution engine can take gradients through."""

    @abstractmethod
    def attribution_module(self) -> torch.nn.Module:
        """``module(*inputs)`` returns logits in the model's output order (``ModelAdapter.output_index``)."""


class TextAttributable(GradientAttributable):
    """Token-level attribution: ``attribution_module()(input_ids, attention_mask)`` and its embedding layer."""

    max_length: int

    @abstractmethod
    def embedding_layer(self) -> torch.nn.Module:
        """The layer whose output is attributed (the input embeddings)."""

    @abstractmethod
    def encode_words(self, texts: Sequence[str]) -> list[EncodedText]:
        """Token ids (cut to ``max_length``) with each token's word index and character span."""

    @abstractmethod
    def special_tokens_mask(self, input_ids: Sequence[int]) -> list[int]:
        """1 for special tokens (kept in baselines), 0 for the others."""

    @abstractmethod
    def token_id(self, kind: str) -> int | None:
        """The id of the ``pad``, ``mask`` or ``unk`` token, None when the vocabulary has none."""


class Tagger(Capability):
    """Tags any sentences of words, not only a split's (name probes, word swaps): the token fairness auditor's need."""

    capability = "tag"

    @abstractmethod
    def tag(self, sentences: list[list[str]], progress: ProgressReporter) -> list[list[str]]:
        """IOB2 tags per word of each sentence."""


class TokenAttributable(GradientAttributable):
    """Attribution of one word's tag: ``attribution_module()(input_ids, attention_mask)`` returns
    (batch, pieces, tags) logits, and a word is read at its first piece; the token engine explains it."""

    max_length: int

    @abstractmethod
    def embedding_layer(self) -> torch.nn.Module:
        """The layer whose output is attributed (the input embeddings)."""

    @abstractmethod
    def encode_sentences(self, sentences: Sequence[Sequence[str]]) -> WordPieces:
        """Word pieces of pre-split sentences cut to ``max_length`` (special tokens kept), each word's
        first piece (-1 when cut) and each piece's word."""

    @abstractmethod
    def special_tokens_mask(self, input_ids: Sequence[int]) -> list[int]:
        """1 for special tokens (kept in baselines), 0 for the others."""

    @abstractmethod
    def token_id(self, kind: str) -> int | None:
        """The id of the ``pad``, ``mask`` or ``unk`` token, None when the vocabulary has none."""

    @property
    @abstractmethod
    def label2id(self) -> dict[str, int]:
        """The model's tag names (as it outputs them, IOB2 or BIOES) to output indices."""

    @property
    @abstractmethod
    def id2label(self) -> dict[int, str]:
        """Output indices to the model's tag names."""


class TabularAttributable(GradientAttributable):
    """Feature-level attribution: ``attribution_module()(x)`` over an encoded float matrix."""

    @abstractmethod
    def encode_features(self, frame: pd.DataFrame) -> np.ndarray:
        """The (n, d) float32 matrix the module reads."""

    @abstractmethod
    def feature_columns(self) -> list[tuple[str, list[int]]]:
        """Each input feature (data column) and the encoded columns it became, in order."""


class FeatureAttributable(Attributable):
    """Black-box attribution over data columns: no gradients, only probabilities of edited rows.

    For models that are not differentiable (scikit-learn pipelines, ONNX graphs): an engine
    replaces columns of a row by baseline values and reads ``predict_frame`` again.
    """

    @abstractmethod
    def input_columns(self) -> list[str]:
        """The data columns the model reads, in order."""

    @abstractmethod
    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, k) probabilities in the model's output order (``ModelAdapter.output_index``)."""


@dataclass(frozen=True)
class RetrainRequest:
    """What a retraining auditor asks for; adapters read the fields that apply to them."""

    seed: int
    top_layers: int = 1  # transformer models: train the top N layers and the head
    pooling: str = "pooler"  # transformer models: "pooler" or "mean" of token states
    base: str | None = None  # transformer models: the base model to start from; default the build's base
    cache_activations: bool = True  # frozen layers computed once, not in every step
    kind: str = "top_layers"  # transformer models: "probe" (top_layers 0), "top_layers" or "lora"
    lora_rank: int = 8  # kind "lora": rank of the adapters on the attention projections
    labels: tuple[str, ...] = ()  # token classifiers: the fresh head's tags, in order (default: the training split's)


class Retrainable(Capability):
    """A fresh trainable copy of the model and its training data, for DP runs."""

    capability = "retrain"

    @classmethod
    def check_retrain(cls, config: ModelConfigBase, request: RetrainRequest) -> None:
        """Raise AuditError at validate time when ``request`` cannot be honoured (default: it can)."""
        return None

    @abstractmethod
    def trainable(self, data: AuditData, request: RetrainRequest, progress: ProgressReporter) -> Trainable:
        """A seeded fresh module factory with the train and test splits as its examples."""


class TokenRetrainable(Retrainable):
    """A token classifier for DP runs: ``trainable`` examples are sentences (per-sample gradients are
    per sentence; the loss is the mean word cross-entropy at each word's first piece), with ``encode``
    for other sentences (the name probes); and the audited model's per-sentence loss for membership inference."""

    max_length: int

    @abstractmethod
    def sentence_losses(self, sentences: list[list[str]], tags: list[list[str]]) -> np.ndarray:
        """Mean cross-entropy of the gold tags over each sentence's words, under the audited model."""


class Refittable(Capability):
    """Refits its model from rows with sample weights (scikit-learn pipelines): what fairlearn's
    reductions (``ExponentiatedGradient``, ``GridSearch``) need to train a fairer copy."""

    capability = "refit"

    @abstractmethod
    def unfitted(self) -> Any:
        """An unfitted copy of the model with the audited one's settings (a scikit-learn estimator)."""

    @abstractmethod
    def model_inputs(self, split: Split) -> pd.DataFrame:
        """The columns the model reads, for the rows of ``split``."""


def capability_name(kind: type) -> str:
    """The name of a capability type, inherited by its refinements (TextAttributable -> attribute)."""
    return next(k.__dict__["capability"] for k in kind.__mro__ if "capability" in k.__dict__)


def capabilities(adapter_cls: type) -> set[str]:
    """The capability names an adapter class has, read from its class hierarchy."""
    return {k.__dict__["capability"] for k in adapter_cls.__mro__ if "capability" in k.__dict__}


def lookup(registry: dict[type, Any], cls: type) -> Any | None:
    """The entry registered for the nearest class in ``cls``'s hierarchy (Opacus' grad-sampler lookup)."""
    return next((registry[k] for k in cls.__mro__ if k in registry), None)
