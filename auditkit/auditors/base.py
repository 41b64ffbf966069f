"""What an auditor is and what it gets to see.

Auditors never read YAML or write files: the runner hands them their validated
settings and an :class:`AuditContext`, and they return an
:class:`~auditkit.results.AuditorResult`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from auditkit.adapters.capabilities import CountScorer, Scorer, capabilities, capability_name
from auditkit.config import StrictModel
from auditkit.errors import AuditError
from auditkit.execution.base import Executor, InProcessExecutor
from auditkit.predictions import BasePredictions, P, expect
from auditkit.streaming.source import StreamedSplit

if TYPE_CHECKING:
    from auditkit.adapters.base import ModelAdapter
    from auditkit.config import AuditConfigBase
    from auditkit.data import AuditData
    from auditkit.progress import ProgressReporter
    from auditkit.results import AuditorResult

SettingsT = TypeVar("SettingsT", bound=StrictModel)
#: The tasks of ``data.task``; an auditor implementation names the ones it supports.
TASKS = ("binary", "multiclass", "token-classification")


@dataclass
class AuditContext:
    """The data, model and shared predictions of one run."""

    config: AuditConfigBase
    data: AuditData
    adapter: ModelAdapter
    progress: ProgressReporter
    executor: Executor = field(default_factory=InProcessExecutor)  # in-process unless execution asks for Ray
    _predictions: dict[str, BasePredictions] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.config.seed

    def predictions(self, split: str = "test") -> BasePredictions:
        """Scores for ``train`` or ``test``, computed once per run; for a streamed split, the
        :class:`~auditkit.streaming.counts.CountedPredictions` of its rows instead."""
        if split not in self._predictions:
            part = getattr(self.data, split)
            if isinstance(part, StreamedSplit):  # counted in one pass; the config check asked for a CountScorer
                if not isinstance(self.adapter, CountScorer):
                    raise AuditError(f"data.streaming: adapter {type(self.adapter).__name__} cannot count")
                self._predictions[split] = self.adapter.count(part, self.executor, self.progress)
            else:
                self._predictions[split] = self.adapter.predict(part, self.progress)
        return self._predictions[split]

    def replace_predictions(self, split: str, predictions: BasePredictions) -> BasePredictions:
        """Every auditor reads ``predictions`` for ``split`` from now on (``--apply-mitigation``)."""
        self._predictions[split] = predictions
        return predictions

    def predictions_of(self, kind: type[P], split: str = "test") -> P:
        """:meth:`predictions` as the kind a task's implementation reads (rows, tags or counts)."""
        return expect(kind, self.predictions(split), f"data.task {self.config.data.task}")


class Auditor(ABC, Generic[SettingsT]):
    """One auditor's implementation for the tasks in ``tasks``.

    An auditor (a name under ``auditors:``) may have one implementation per task, each registered
    in the ``auditkit.auditors`` entry-point group (``performance``, ``performance.tokens``, ...). They
    share ``name`` and ``Settings``, so a setting means the same for every task; a setting one task
    cannot honour is named in that implementation's ``refuses`` and ``validate`` rejects it there.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[StrictModel]]
    #: The values of ``data.task`` this implementation audits; another task's audit is refused at validate.
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass")
    #: Settings this implementation cannot honour, with why: setting one is an error at validate.
    refuses: ClassVar[dict[str, str]] = {}
    #: The capability the adapter must have (a type from auditkit.adapters.capabilities).
    requires: ClassVar[type] = Scorer
    #: Whether ``run`` works from the counts of a streamed audit (``data.streaming``) instead of rows.
    reads_counts: ClassVar[bool] = False

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    @classmethod
    def metric_ids(cls, settings: SettingsT, config: AuditConfigBase) -> set[str]:
        """Every gateable id this auditor can produce for ``config``, e.g. ``performance.accuracy``."""
        return set()

    @classmethod
    def check_config(cls, settings: SettingsT, config: AuditConfigBase) -> None:
        """Raise AuditError for settings that contradict the rest of the config (default: none)."""
        return None

    @classmethod
    def refused(cls, settings: SettingsT) -> list[tuple[str, str]]:
        """The settings given in the config that this task's implementation cannot honour, with why."""
        return [(key, why) for key, why in cls.refuses.items() if key in settings.model_fields_set]

    @classmethod
    def check_adapter(cls, settings: SettingsT, config: AuditConfigBase, adapter_cls: type) -> None:
        """Raise AuditError when ``adapter_cls`` lacks what this auditor needs (at validate time)."""
        if config.data.streaming and not cls.reads_counts:
            raise AuditError(
                f"auditors.{cls.name}: auditor '{cls.name}' needs the rows, which a streamed audit "
                "(data.streaming) never loads; only performance and fairness run on its counts"
            )
        if not issubclass(adapter_cls, cls.requires):
            needed = capability_name(cls.requires)
            has = ", ".join(sorted(capabilities(adapter_cls))) or "none"
            why = getattr(adapter_cls, "lacks", {}).get(needed)
            raise AuditError(
                f"auditors.{cls.name}: auditor '{cls.name}' needs the '{needed}' capability, which adapter "
                f"'{getattr(adapter_cls, 'name', adapter_cls.__name__)}' does not have (it has: {has})"
                + (f": {why}" if why else "")
            )

    @abstractmethod
    def run(self, context: AuditContext) -> AuditorResult: ...
