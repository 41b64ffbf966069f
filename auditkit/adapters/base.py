"""The common model adapter every auditor talks to.

An adapter turns a :class:`~auditkit.data.Split` into scores and can build its model from
the training split; what else it can do it declares by inheriting capability types from
:mod:`auditkit.adapters.capabilities` (attribution, retraining). Adding a model family is
one module with one subclass plus one entry point.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from auditkit.adapters.capabilities import Scorer
from auditkit.config import ModelConfigBase
from auditkit.errors import AuditError
from auditkit.predictions import BasePredictions

if TYPE_CHECKING:
    from auditkit.config import DataConfig
    from auditkit.data import AuditData, Split
    from auditkit.progress import ProgressReporter


class ModelAdapter(Scorer):
    name: ClassVar[str]
    Config: ClassVar[type[ModelConfigBase]]
    #: Whether the audit data is split into train and test. An adapter with no model to train or
    #: attack (a file of another system's predictions) audits every row: the train split is empty.
    holds_out: ClassVar[bool] = True
    #: Why a capability this adapter lacks cannot be had, shown when an auditor asks for it.
    lacks: ClassVar[dict[str, str]] = {}

    def __init__(self, config: ModelConfigBase, model_dir: Path) -> None:
        self.config = config
        self.model_dir = model_dir
        self.device = resolve_device(config.device)

    @classmethod
    def check_data(cls, config: ModelConfigBase, data_config: DataConfig) -> None:
        """Raise AuditError when the data section cannot feed this model (default: anything goes)."""
        return None

    @classmethod
    def build(
        cls, config: ModelConfigBase, data: AuditData, out_dir: Path, seed: int, progress: ProgressReporter
    ) -> None:
        """Train a model from ``config.build`` on ``data.train`` and save it in ``out_dir``.

        Optional: an adapter whose Config has no ``build`` section builds nothing, and the model
        store calls this only when ``model.build`` is configured.
        """
        raise AuditError(f"adapter '{cls.name}' cannot build a model; give model.path of an existing one")

    @classmethod
    @abstractmethod
    def load(cls, config: ModelConfigBase, data_config: DataConfig) -> ModelAdapter:
        """Open the model folder ``config.path``; AuditError when it is unusable."""

    @abstractmethod
    def predict(self, split: Split, progress: ProgressReporter) -> BasePredictions:
        """Scores for every row of ``split`` (``classes`` from ``split.classes``), or what the task's model
        gives instead of a row's probabilities (token tags per word)."""

    def match_data(self, data: AuditData) -> AuditData:
        """The data this model scores, checked over every row before any is scored: all of it, unless the
        model is a file of predictions joined to the rows by id (validate scores only a sample, so a join
        checked there would count the sample's ids, not the file's)."""
        return data

    def input_notes(self) -> list[str]:
        """What the report should say about the inputs scored so far (e.g. values filled in)."""
        return []

    def output_index(self, label: np.ndarray) -> np.ndarray:
        """The model output standing for label 1 (positive) or 0 (negative); identity unless overridden."""
        return np.asarray(label, dtype=int)

    @property
    def model_sha256(self) -> str:
        return folder_sha256(self.model_dir)


#: The build record auditkit writes next to a model it built: when and from what, not the model itself.
BUILD_RECORD = "auditkit-build.json"


def folder_sha256(folder: Path) -> str:
    """Content hash of a model folder: every file's relative path and bytes, in sorted order.

    The build record is left out: it holds the build's duration, and the same model
    rebuilt from the same seed must hash the same.
    """
    digest = hashlib.sha256()
    files = (p for p in Path(folder).rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != BUILD_RECORD)
    for file in sorted(files):
        digest.update(file.relative_to(folder).as_posix().encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise AuditError("model.device is 'cuda' but no CUDA device is available")
    return torch.device(choice)


def positive_probability(logits: torch.Tensor, positive_index: int) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1)[:, positive_index]
