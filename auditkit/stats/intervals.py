"""Confidence intervals: percentile bootstrap and DeLong's interval for ROC AUC."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

#: Share of bootstrap replicates allowed to be undefined before an interval is withheld.
MAX_UNDEFINED_SHARE = 0.01


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[tuple[float, float] | None, str | None]:
    """Percentile interval over the replicate axis (0); None with a reason when too many are undefined."""
    finite = replicates[np.isfinite(replicates)]
    undefined = 1 - len(finite) / max(len(replicates), 1)
    if len(finite) == 0 or undefined > MAX_UNDEFINED_SHARE:
        return None, f"undefined in {undefined:.0%} of bootstrap resamples (a rate with an empty denominator)"
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return (float(low), float(high)), None


def percentile_intervals(replicates: np.ndarray, confidence: float) -> np.ndarray:
    """Vectorised percentile interval for ``(R, K)`` replicates: ``(K, 2)``, NaN where too many are undefined."""
    tail = (1 - confidence) / 2 * 100
    with warnings.catch_warnings():  # an all-NaN column is handled just below
        warnings.simplefilter("ignore", RuntimeWarning)
        bounds = np.nanpercentile(replicates, [tail, 100 - tail], axis=0).T
    undefined = np.isnan(replicates).mean(axis=0)
    bounds[undefined > MAX_UNDEFINED_SHARE] = np.nan
    return bounds


def delong_auc(y_true: np.ndarray, scores: np.ndarray, confidence: float) -> tuple[float, tuple[float, float]]:
    """ROC AUC with DeLong's asymptotic interval (DeLong, DeLong & Clarke-Pearson, 1988)."""
    positives, negatives = scores[y_true == 1], scores[y_true == 0]
    m, n = len(positives), len(negatives)
    # Placement values via mid-ranks: V10[i] = P(neg < pos_i) + 0.5 P(neg == pos_i), likewise V01.
    all_ranks = stats.rankdata(np.concatenate([positives, negatives]))
    pos_ranks, neg_ranks = stats.rankdata(positives), stats.rankdata(negatives)
    v10 = (all_ranks[:m] - pos_ranks) / n
    v01 = 1 - (all_ranks[m:] - neg_ranks) / m
    auc = float(v10.mean())
    variance = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(variance)
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 200) -> np.ndarray:
    """Column means of ``values`` (n, k) over ``n_boot`` row resamples, drawn as multinomial weights."""
    n = len(values)
    out = []
    for start in range(0, n_boot, chunk):
        weights = rng.multinomial(n, np.full(n, 1 / n), size=min(chunk, n_boot - start))
        out.append(weights @ values / n)
    return np.vstack(out)
