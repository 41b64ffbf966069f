"""What a model said about one split: torch-free, so results, reports and plain scorers need no torch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from auditkit.errors import AuditError


class BasePredictions(ABC):
    """What a model said about one split, whatever the task: :class:`Predictions` (a row's class
    probabilities), token tags per word (token classification), or the counts of a streamed split.

    Auditors receive this common kind and each task's implementation reads the kind its task makes
    (:meth:`~auditkit.auditors.base.AuditContext.predictions_of`).
    """

    n_truncated: int  # inputs cut to the model's maximum length

    @abstractmethod
    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Predictions(BasePredictions):
    """Scores for one split, computed once per run and shared by every auditor.

    Column ``j`` of ``probabilities`` is the probability of label index ``j`` (what ``y_true``
    and ``y_pred`` hold), named ``classes[j]``; for a binary audit index 1 is the positive
    label. A 1-D ``probabilities`` is read as a binary model's positive-class probability, so
    ``Predictions(ids, y_true, scores, y_pred)`` keeps working. ``logits`` stay in the model's
    own output order (``ModelAdapter.output_index`` maps labels to it).
    """

    ids: np.ndarray
    y_true: np.ndarray  # label index per row: 0/1 for binary
    probabilities: np.ndarray  # (n, k); 1-D input means the binary positive-class probability
    y_pred: np.ndarray  # label index per row
    n_truncated: int = 0  # inputs cut to the model's maximum length
    logits: np.ndarray | None = None  # (n, k) raw outputs, kept so explainers need no second forward pass
    classes: tuple[str, ...] = ()  # class names in column order; defaults to "0", "1", ...

    def __post_init__(self) -> None:
        probabilities = np.asarray(self.probabilities, dtype=np.float64)
        if probabilities.ndim == 1:
            probabilities = np.column_stack([1.0 - probabilities, probabilities])
        if probabilities.ndim != 2 or len(probabilities) != len(self.ids):
            raise ValueError(f"probabilities must be (n, k) with n = {len(self.ids)}, got {probabilities.shape}")
        object.__setattr__(self, "probabilities", probabilities)
        classes = tuple(str(c) for c in self.classes) or tuple(str(j) for j in range(probabilities.shape[1]))
        if len(classes) != probabilities.shape[1]:
            raise ValueError(f"{len(classes)} class names for {probabilities.shape[1]} probability columns")
        object.__setattr__(self, "classes", classes)

    @property
    def n_classes(self) -> int:
        return self.probabilities.shape[1]

    @property
    def scores(self) -> np.ndarray:
        """The positive-class probability of a binary model (what binary metrics read)."""
        if self.n_classes != 2:
            raise ValueError(f"scores is defined for binary models; this one has {self.n_classes} classes")
        return self.probabilities[:, 1]

    def __len__(self) -> int:
        return len(self.ids)


P = TypeVar("P", bound=BasePredictions)


def expect(kind: type[P], predictions: BasePredictions, who: str) -> P:
    """``predictions`` as the kind ``who`` reads; an AuditError (not a wrong number) when a model gave another kind."""
    if not isinstance(predictions, kind):
        raise AuditError(
            f"{who}: reads {kind.__name__}, but the model gave {type(predictions).__name__} "
            "(an adapter for another task?)"
        )
    return predictions
