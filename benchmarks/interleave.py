"""Arms measured side by side: A, B, A, B, ... so a change of load hits every arm alike; the
ratio reported is the median of the per-round ratios, not a ratio of totals."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def interleaved(arms: dict[str, Callable[[], Any]], rounds: int, warmup: bool = False) -> dict[str, Any]:
    """Run every arm once per round, in the given order; seconds per arm and round, the median
    seconds, and for every arm after the first the median over rounds of first / arm (a speed-up
    of that arm over the first when above 1). The last round's return values come back too."""
    if warmup:
        for arm in arms.values():
            arm()
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    last: dict[str, Any] = {}
    for _ in range(rounds):
        for name, arm in arms.items():
            started = time.perf_counter()
            last[name] = arm()
            seconds[name].append(round(time.perf_counter() - started, 3))
    first = next(iter(arms))
    ratios = {name: [a / b for a, b in zip(seconds[first], seconds[name], strict=True)] for name in list(arms)[1:]}
    return {
        "rounds": rounds,
        "order": list(arms),
        "seconds": seconds,
        "median_s": {name: float(np.median(s)) for name, s in seconds.items()},
        f"median_ratio_{first}_over": {name: round(float(np.median(r)), 3) for name, r in ratios.items()},
        "per_round_ratios": {name: [round(x, 3) for x in r] for name, r in ratios.items()},
        "last": last,
    }
