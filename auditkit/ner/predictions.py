"""Tags for one split of sentences, computed once per run and shared by every auditor (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.ner.tags import spans
from auditkit.predictions import BasePredictions


@dataclass(frozen=True)
class TokenPredictions(BasePredictions):
    """Gold and predicted IOB2 tags per word, and the probability of each predicted tag."""

    ids: np.ndarray  # sentence ids
    tokens: list[list[str]]
    y_true: list[list[str]]
    y_pred: list[list[str]]
    scores: list[list[float | None]]  # None: the word had no word piece (cut by max_length or empty)
    n_truncated: int = 0  # sentences longer than the model's maximum length

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, positions: np.ndarray) -> TokenPredictions:
        pick = [int(i) for i in positions]
        return TokenPredictions(
            self.ids[pick],
            [self.tokens[i] for i in pick],
            [self.y_true[i] for i in pick],
            [self.y_pred[i] for i in pick],
            [self.scores[i] for i in pick],
            0,
        )

    def rows(self, sensitive: dict[str, list[str]]) -> dict[str, list[Any]]:
        """``predictions.csv`` columns: one row per word, with the sentence's sensitive features."""
        out: dict[str, list[Any]] = {k: [] for k in ("id", "position", "token", "y_true", "y_pred", "score")}
        extra: dict[str, list[Any]] = {feature: [] for feature in sensitive}
        for s, sentence_id in enumerate(self.ids):
            for i, word in enumerate(self.tokens[s]):
                out["id"].append(str(sentence_id))
                out["position"].append(i)
                out["token"].append(word)
                out["y_true"].append(self.y_true[s][i])
                out["y_pred"].append(self.y_pred[s][i])
                out["score"].append(self.scores[s][i])
                for feature, groups in sensitive.items():
                    extra[feature].append(groups[s])
        return {**out, **extra}

    def entity_records(self) -> list[dict[str, Any]]:
        """``entities.jsonl`` lines: gold and predicted spans ``[start, end, type]`` (end exclusive)."""
        return [
            {
                "id": str(sentence_id),
                "tokens": list(self.tokens[s]),
                "gold": [list(span) for span in spans(self.y_true[s])],
                "pred": [list(span) for span in spans(self.y_pred[s])],
            }
            for s, sentence_id in enumerate(self.ids)
        ]
