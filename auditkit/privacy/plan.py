"""Which runs a privacy audit trains, and the stable tag each one's gate ids carry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunSpec:
    """One run: its epsilon (None: the non-private reference), clip norm and learning-rate grid."""

    epsilon: float | None
    max_grad_norm: float
    learning_rates: tuple[float, ...]
    epochs: tuple[int, ...]
    tag: str


def run_tag(epsilon: float, clip: float | None = None, learning_rate: float | None = None) -> str:
    """``eps=8`` for a run at the default settings; ``eps=8,clip=0.5`` / ``eps=8,lr=0.001`` for sweeps."""
    parts = [f"eps={epsilon:g}"]
    if clip is not None:
        parts.append(f"clip={clip:g}")
    if learning_rate is not None:
        parts.append(f"lr={learning_rate:g}")
    return ",".join(parts)


def plan_runs(
    epsilons: list[float],
    clip: float,
    learning_rates: list[float],
    epochs: list[int],
    sweep: list[tuple[float, float | None, float | None]],
) -> list[RunSpec]:
    """The default runs (one per epsilon) then each sweep entry (epsilon, clip or None, lr or None), deduplicated."""
    runs = [RunSpec(eps, clip, tuple(learning_rates), tuple(epochs), run_tag(eps)) for eps in epsilons]
    seen = {r.tag for r in runs}
    for eps, sweep_clip, lr in sweep:
        tag = run_tag(eps, sweep_clip, lr)
        if tag in seen:
            continue
        seen.add(tag)
        rates = (lr,) if lr is not None else tuple(learning_rates)
        runs.append(RunSpec(eps, sweep_clip if sweep_clip is not None else clip, rates, tuple(epochs), tag))
    return runs
