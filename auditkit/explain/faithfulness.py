"""Faithfulness of attributions as ERASER defines it (DeYoung et al., ACL 2020).

Comprehensiveness: how much the predicted-class probability drops when the top k% of
units are replaced by the baseline; sufficiency: how much it drops when only they are
kept. AOPC averages over k. The same numbers for random rankings say whether the
explanation beats chance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.explain.common import Attribution

#: Build a model input from an attribution's example with the flagged units replaced by the baseline.
Perturb = Callable[[Attribution, np.ndarray], Any]
#: Probability of each target output for a list of inputs (targets as in ``Attribution.target``).
Probabilities = Callable[[list[Any], list[Any]], np.ndarray]


@dataclass(frozen=True)
class Faithfulness:
    comprehensiveness_aopc: float
    sufficiency_aopc: float
    random_comprehensiveness_aopc: float
    random_sufficiency_aopc: float

    @property
    def better_than_random(self) -> bool:
        return (
            self.comprehensiveness_aopc > self.random_comprehensiveness_aopc
            and self.sufficiency_aopc < self.random_sufficiency_aopc
        )


def faithfulness(
    attributions: Sequence[Attribution],
    perturb: Perturb,
    probabilities: Probabilities,
    percents: Sequence[float],
    rng: np.random.Generator,
    full: np.ndarray | None = None,
) -> Faithfulness:
    """``full``: the unperturbed probabilities of the targets, when the run already has them."""
    curves = faithfulness_curves(attributions, perturb, probabilities, percents, rng, full)
    return Faithfulness(*(float(np.mean(c)) for kind in ("model", "random") for c in curves[kind]))


def faithfulness_curves(
    attributions: Sequence[Attribution],
    perturb: Perturb,
    probabilities: Probabilities,
    percents: Sequence[float],
    rng: np.random.Generator,
    full: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per ranking ("model", "random"): the (percents, examples) drops in probability when the top units
    are removed (comprehensiveness) and when only they are kept (sufficiency). Averaged over percents,
    a column is one example's AOPC."""
    targets = [a.target for a in attributions]
    if full is None:
        full = probabilities([perturb(a, np.zeros(len(a.units), bool)) for a in attributions], targets)
    results = {}
    for kind in ("model", "random"):
        rankings = [
            np.argsort(-a.scores, kind="stable") if kind == "model" else rng.permutation(len(a.units))
            for a in attributions
        ]
        comprehensive, sufficient = [], []
        for percent in percents:
            drop, keep = [], []
            for a, order in zip(attributions, rankings, strict=True):
                top = np.zeros(len(a.units), bool)
                top[order[: max(1, math.ceil(len(a.units) * percent / 100))]] = True
                drop.append(perturb(a, top))
                keep.append(perturb(a, ~top))
            comprehensive.append(full - probabilities(drop, targets))
            sufficient.append(full - probabilities(keep, targets))
        results[kind] = (np.array(comprehensive), np.array(sufficient))
    return results
