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


def simultaneous_box(observed: np.ndarray, replicates: np.ndarray, confidence: float) -> np.ndarray:
    """Bounds ``(K, 2)`` that hold all ``K`` components at once with the given confidence.

    Each component is ``estimate ± q · sd`` where ``q`` is the bootstrap quantile of the largest
    standardised deviation over the components (a max-t box). Replicates with an undefined
    component are left out; callers withhold the interval when too many are.
    """
    finite = replicates[np.isfinite(replicates).all(axis=1)]
    sd = finite.std(axis=0, ddof=1) if len(finite) > 1 else np.zeros(observed.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        deviation = np.where(sd > 0, np.abs(finite - observed) / np.where(sd > 0, sd, 1), 0.0)
    q = float(np.quantile(deviation.max(axis=1), confidence)) if len(finite) else 0.0
    return np.column_stack([observed - q * sd, observed + q * sd])


def largest_gap_interval(
    observed: np.ndarray, replicates: np.ndarray, confidence: float, ceiling: float = 1.0
) -> tuple[float, float]:
    """Interval for ``max_k |c_k|`` (a largest absolute difference) from signed components ``c_k``.

    The percentile interval of ``max |c*|`` is biased upward when the components are near 0 (a
    folded distribution never reaches below the estimate), so it can exclude its own estimate and
    never covers a true value of 0. Instead every signed component gets a simultaneous interval,
    and the statistic's interval is the range ``max |c|`` takes over that box: it always holds the
    estimate and covers the truth whenever the box does, 0 included. The price: with several
    components it is conservative (about 98% for equalized odds in tests/test_interval_coverage.py).
    """
    box = simultaneous_box(observed, replicates, confidence)
    low, high = box[:, 0], box[:, 1]
    nearest = np.where((low <= 0) & (high >= 0), 0.0, np.minimum(np.abs(low), np.abs(high)))
    farthest = np.maximum(np.abs(low), np.abs(high))
    return float(nearest.max()), float(min(farthest.max(), ceiling))


def smallest_ratio_interval(observed: np.ndarray, replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Interval for ``min_k fold(c_k)``, ``fold(c) = min(c, 1/c)``, from ratio components ``c_k`` (a
    smallest ratio between groups): ``exp(-largest gap)`` of the log ratios, where ratios are closer to
    normal; on the ratios themselves when a rate of 0 leaves a log undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_observed, log_replicates = np.log(observed), np.log(replicates)
    finite_rows = np.isfinite(log_replicates).all(axis=1) | ~np.isfinite(replicates).all(axis=1)
    if np.isfinite(log_observed).all() and 1 - finite_rows.mean() <= MAX_UNDEFINED_SHARE:
        low, high = largest_gap_interval(log_observed, log_replicates, confidence, ceiling=np.inf)
        return float(np.exp(-high)), float(np.exp(-low))
    box = np.clip(simultaneous_box(observed, replicates, confidence), 0.0, None)

    def fold(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(x > 1, 1 / np.where(x > 1, x, 1), x)

    lowest = np.minimum(fold(box[:, 0]), fold(box[:, 1]))
    highest = np.where((box[:, 0] <= 1) & (box[:, 1] >= 1), 1.0, np.maximum(fold(box[:, 0]), fold(box[:, 1])))
    return float(lowest.min()), float(highest.min())
