"""Likelihood-ratio membership inference (LiRA; Carlini et al. 2022, "Membership Inference
Attacks From First Principles"), the online variant with fixed (pooled) variances.

Shadow models are trained exactly as the attacked run (same trainable, settings, epsilon),
each on a random subset of a population of known members and non-members, as large as the
attacked run's training set. For every example, the shadows that trained on it (IN) and
those that did not (OUT) give two Gaussians of its logit-scaled confidence
``phi = log p_y - log(1 - p_y)`` (a sentence: ``p_y`` the geometric mean over its words);
the attack score is the log-likelihood ratio of the
attacked model's phi under IN versus OUT. With few shadows the paper pools the variances
across examples (its "fixed variance" variant), as done here; an example no shadow saw
IN (or OUT) falls back to the pooled mean of that side.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from scipy.special import log_softmax

from auditkit.privacy.mia import AttackResult, score_attack

METHOD = "LiRA (online, fixed variance)"


def logit_confidence(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)), computed in log space so a confident model keeps its spread."""
    log_p = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)[np.arange(len(y)), y]
    log_p = np.minimum(log_p, -1e-12)
    return log_p - np.log(-np.expm1(log_p))


def shadow_masks(n_population: int, n_train: int, n_shadows: int, rng: np.random.Generator) -> np.ndarray:
    """(shadows, population) booleans: each shadow trains on ``n_train`` rows drawn without replacement."""
    masks = np.zeros((n_shadows, n_population), dtype=bool)
    for s in range(n_shadows):
        masks[s, rng.choice(n_population, size=min(n_train, n_population), replace=False)] = True
    return masks


def lira_scores(target_phi: np.ndarray, shadow_phi: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Log-likelihood ratio IN/OUT per example; ``shadow_phi`` and ``masks`` are (shadows, examples)."""
    means, spreads = [], []
    for side in (masks, ~masks):
        count = side.sum(axis=0)
        total = np.where(side, shadow_phi, 0.0).sum(axis=0)
        pooled = shadow_phi[side].mean() if side.any() else 0.0
        mean = np.where(count > 0, total / np.maximum(count, 1), pooled)
        residual = (shadow_phi - mean[None, :])[side]
        spreads.append(max(float(residual.std()), 1e-3) if residual.size > 1 else 1.0)
        means.append(mean)
    return stats.norm.logpdf(target_phi, means[0], spreads[0]) - stats.norm.logpdf(target_phi, means[1], spreads[1])


def lira_attack(
    target_logits: np.ndarray,
    y: np.ndarray,
    is_member: np.ndarray,
    n_train: int,
    train_shadow: Callable[[np.ndarray, int], np.ndarray],
    n_shadows: int,
    delta: float,
    rng: np.random.Generator,
) -> AttackResult:
    """Attack the model that produced ``target_logits`` on a population of rows.

    ``is_member`` marks the population rows the attacked model trained on; ``train_shadow(rows, i)``
    trains shadow ``i`` the same way on those population rows and returns its logits on the whole
    population. Each shadow must draw its own randomness (seed): a shadow that replays the
    attacked run's noise and batches cancels the very noise that makes the run private.
    """
    masks = shadow_masks(len(y), n_train, n_shadows, rng)
    shadow_logits = [train_shadow(np.flatnonzero(m), i) for i, m in enumerate(masks)]
    return lira_result(target_logits, y, is_member, shadow_logits, masks, delta)


def lira_result(
    target_logits: np.ndarray,
    y: np.ndarray,
    is_member: np.ndarray,
    shadow_logits: list[np.ndarray],
    masks: np.ndarray,
    delta: float,
) -> AttackResult:
    """The attack from shadows trained elsewhere: ``shadow_logits[i]`` from the shadow trained on the
    rows ``masks[i]`` marks; one label per row."""
    shadow_phi = np.stack([logit_confidence(logits, y) for logits in shadow_logits])
    return lira_from_confidences(logit_confidence(target_logits, y), is_member, shadow_phi, masks, delta)


def lira_from_confidences(
    target_phi: np.ndarray, is_member: np.ndarray, shadow_phi: np.ndarray, masks: np.ndarray, delta: float
) -> AttackResult:
    """The attack from per-example statistics (a row's logit-scaled confidence, or a sentence's over its
    words): the attacked model's, and every shadow's (shadows, examples) with the rows each trained on."""
    scores = lira_scores(target_phi, shadow_phi, masks)
    return score_attack(scores[is_member], scores[~is_member], delta, method=f"{METHOD}, {len(masks)} shadows")
