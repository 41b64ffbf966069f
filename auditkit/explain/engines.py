"""Attribution engines, registered for the capability type they need (Opacus' ``register_grad_sampler``).

The explain auditor looks an engine up by walking the adapter's class hierarchy, so any
adapter inheriting the capability, a subclass or a plugin, is explained with no edit in
auditkit. A plugin adds an engine for its own capability type with::

    @register_engine(MyAttributable)
    class MyEngine: ...   # implements the Engine protocol below
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from auditkit.adapters.capabilities import lookup

if TYPE_CHECKING:
    import numpy as np

    from auditkit.data import AuditData, Split
    from auditkit.explain.common import Attribution
    from auditkit.progress import ProgressReporter


@dataclass(frozen=True)
class EngineOptions:
    """The explain settings an engine reads."""

    output: str = "logit"  # what attributions add up to: "logit" or "probability"
    baseline_token: str = "pad"  # text engines: "pad", "mask" or "unk"
    token_budget: int | None = None  # text engines: tokens per forward/backward pass
    quadrature: str = "midpoint"  # "midpoint" or "gauss_legendre"


class Engine(Protocol):
    """What the explain auditor needs from an engine."""

    method: str  # named in the report, e.g. "integrated_gradients"
    units: str  # what attributions are over: "words" or "features"
    baseline_name: str  # the baseline in the report: "pad", "mask", "unk", "mean_training_encoding", ...

    @classmethod
    def create(cls, adapter: Any, data: AuditData, options: EngineOptions) -> Engine: ...

    def explain(
        self,
        split: Split,
        positions: np.ndarray,
        targets: Sequence[Any],
        f_inputs: np.ndarray | None,
        tolerance: float,
        progress: ProgressReporter,
        schedule: Sequence[int],
    ) -> tuple[list[Attribution], list[str | None]]:
        """Attributions of ``split`` rows at ``positions`` for output ``targets``, and each row's text (or None).
        A target is any picklable per-example value the engine understands: a class index for classifiers,
        (word position, tag id) for token classifiers."""

    def perturb(self, attribution: Attribution, replace: np.ndarray) -> Any:
        """The example's model input with the flagged units set to the baseline."""

    def probabilities(self, inputs: list[Any], targets: list[Any]) -> np.ndarray:
        """The targets' probabilities for model inputs made by ``perturb``."""


ENGINES: dict[type, type] = {}


def register_engine(capability: type) -> Callable[[type], type]:
    """Class decorator: use this engine for adapters that inherit ``capability``."""

    def decorator(engine: type) -> type:
        ENGINES[capability] = engine
        return engine

    return decorator


def engine_for(adapter_cls: type) -> type | None:
    """The engine registered for the nearest capability in ``adapter_cls``'s hierarchy, None if none."""
    return lookup(ENGINES, adapter_cls)
