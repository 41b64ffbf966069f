"""Loss-threshold membership inference and the empirical epsilon lower bound it implies.

Members are training rows, non-members held-out rows, in equal numbers. A row's attack
score is minus its loss. For every threshold, Clopper-Pearson upper bounds on the
false-positive and false-negative rates give a lower bound on epsilon that any
(epsilon, delta)-DP training must respect (Kairouz et al. 2015; as TensorFlow Privacy's
``epsilon_lower_bound``). The ceiling is the largest bound these sample sizes could show.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from scipy import stats
from sklearn import metrics as skm

FPR_LEVELS = (0.01, 0.001)


class AttackResult(BaseModel):
    auc: float
    tpr_at_fpr: dict[str, float]
    tpr_at_fpr_ci: dict[str, list[float]] = {}  # Clopper-Pearson 95% on the members found at that threshold
    method: str = "loss threshold"
    epsilon_lower_bound: float
    epsilon_lower_bound_ceiling: float
    n_members: int
    n_nonmembers: int
    roc: dict[str, list[float]] = {}


def cross_entropy(probability_of_label: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(probability_of_label, 1e-12, 1.0))


def clopper_pearson_upper(failures: np.ndarray, n: int, alpha: float = 0.05) -> np.ndarray:
    """One-sided (1 - alpha/2) upper bound of a binomial rate, as a two-sided 1 - alpha interval's top."""
    failures = np.asarray(failures)
    upper = stats.beta.ppf(1 - alpha / 2, failures + 1, np.maximum(n - failures, 1e-12))
    return np.where(failures >= n, 1.0, upper)


def epsilon_bound(fpr_upper: np.ndarray, fnr_upper: np.ndarray, delta: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.maximum(1 - delta - fnr_upper, 0) / fpr_upper)
        b = np.log(np.maximum(1 - delta - fpr_upper, 0) / fnr_upper)
    return np.nan_to_num(np.maximum(a, b), nan=0.0, neginf=0.0, posinf=0.0)


def balanced(members: np.ndarray, nonmembers: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(members), len(nonmembers))
    return rng.choice(members, n, replace=False), rng.choice(nonmembers, n, replace=False)


def clopper_pearson(successes: int, n: int, alpha: float = 0.05) -> list[float]:
    """Exact two-sided 1 - alpha interval of a binomial rate."""
    low = stats.beta.ppf(alpha / 2, successes, n - successes + 1) if successes > 0 else 0.0
    high = stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes) if successes < n else 1.0
    return [float(low), float(high)]


def loss_attack(member_loss: np.ndarray, nonmember_loss: np.ndarray, delta: float) -> AttackResult:
    return score_attack(-np.asarray(member_loss), -np.asarray(nonmember_loss), delta)


def score_attack(
    member_score: np.ndarray, nonmember_score: np.ndarray, delta: float, method: str = "loss threshold"
) -> AttackResult:
    """Any attack whose score is higher for members: ROC, TPR at low FPR, epsilon lower bound."""
    scores = np.concatenate([member_score, nonmember_score])
    labels = np.concatenate([np.ones(len(member_score)), np.zeros(len(nonmember_score))])
    fpr, tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    auc = float(skm.roc_auc_score(labels, scores))
    n_m, n_n = len(member_score), len(nonmember_score)
    tpr_at = {str(level): float(tpr[fpr <= level].max(initial=0.0)) for level in FPR_LEVELS}
    tpr_ci = {level: clopper_pearson(round(value * n_m), n_m) for level, value in tpr_at.items()}
    false_pos = np.round(fpr * n_n)
    false_neg = np.round((1 - tpr) * n_m)
    bound = epsilon_bound(clopper_pearson_upper(false_pos, n_n), clopper_pearson_upper(false_neg, n_m), delta)
    ceiling = epsilon_bound(clopper_pearson_upper(np.zeros(1), n_n), clopper_pearson_upper(np.zeros(1), n_m), delta)
    keep = np.unique(np.geomspace(1, len(fpr), num=min(len(fpr), 120)).astype(int) - 1)
    return AttackResult(
        auc=auc,
        tpr_at_fpr=tpr_at,
        tpr_at_fpr_ci=tpr_ci,
        method=method,
        epsilon_lower_bound=float(max(bound.max(), 0.0)),
        epsilon_lower_bound_ceiling=float(ceiling[0]),
        n_members=n_m,
        n_nonmembers=n_n,
        roc={"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()},
    )
