"""The four auditors' implementations for ``data.task: token-classification``.

Each shares its auditor's name and ``Settings`` with the classification implementation (so a setting
means the same on both) and is registered in the ``auditkit.auditors`` entry-point group as
``<auditor>.tokens``; ``refuses`` names the settings the token path cannot honour, which ``validate``
rejects instead of ignoring them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from auditkit.adapters.capabilities import Tagger, TokenAttributable, TokenRetrainable
from auditkit.auditors.base import AuditContext, Auditor
from auditkit.auditors.explain import ExplainSettings
from auditkit.auditors.fairness import FairnessSettings, check_slices
from auditkit.auditors.performance import PerformanceSettings
from auditkit.auditors.privacy import PrivacySettings, request
from auditkit.config import AuditConfigBase
from auditkit.errors import AuditError
from auditkit.ner.data import entity_types_of
from auditkit.ner.explain_audit import TokenExplainResult, token_explain
from auditkit.ner.fairness import TokenFairnessResult, check_probes, token_fairness
from auditkit.ner.fairness import metric_ids as fairness_ids
from auditkit.ner.performance import TokenPerformanceResult, token_performance
from auditkit.ner.performance import metric_ids as performance_ids
from auditkit.ner.predictions import TokenPredictions
from auditkit.ner.privacy_audit import TokenPrivacyResult, token_privacy
from auditkit.ner.privacy_audit import metric_ids as privacy_ids
from auditkit.stats.groups import slice_name

TOKENS = ("token-classification",)
FAITHFULNESS = ("comprehensiveness_aopc", "sufficiency_aopc")
TARGETS = ("predicted", "gold")


class TokenPerformanceAuditor(Auditor[PerformanceSettings]):
    """Strict entity precision, recall and F1 per type, micro and macro, with sentence-bootstrap intervals."""

    name = "performance"
    Settings = PerformanceSettings
    tasks = TOKENS
    refuses: ClassVar[dict[str, str]] = {
        "calibration_bins": "a tagger's calibration per word is not computed",
    }

    @classmethod
    def metric_ids(cls, settings: PerformanceSettings, config: AuditConfigBase) -> set[str]:
        return {f"{cls.name}.{m}" for m in performance_ids(entity_types_of(config.data))}

    def run(self, context: AuditContext) -> TokenPerformanceResult:
        p = context.predictions_of(TokenPredictions)
        s = self.settings
        return token_performance(p, n_boot=s.n_boot, confidence=s.confidence, seed=context.seed)


class TokenFairnessAuditor(Auditor[FairnessSettings]):
    """Name probes, entity F1 per group of sentences, and word swaps."""

    name = "fairness"
    Settings = FairnessSettings
    tasks = TOKENS
    requires = Tagger

    @classmethod
    def metric_ids(cls, settings: FairnessSettings, config: AuditConfigBase) -> set[str]:
        slices = [slice_name(s) for s in settings.slices(config)]
        ids = fairness_ids(list(settings.name_probes), slices, list(settings.counterfactual))
        return {f"{cls.name}.{m}" for m in ids}

    @classmethod
    def check_config(cls, settings: FairnessSettings, config: AuditConfigBase) -> None:
        known = set(config.data.sensitive_features)
        if (settings.features or settings.intersections) and not known:
            raise AuditError("auditors.fairness.features: data.sensitive_features is empty")
        check_slices(settings, known)
        if not (known or settings.name_probes or settings.counterfactual):
            raise AuditError(
                "auditors.fairness: nothing to check; add name_probes, counterfactual or data.sensitive_features"
            )
        if config.config_path is not None:
            check_probes(settings.name_probes, Path(config.config_path).parent)

    def run(self, context: AuditContext) -> TokenFairnessResult:
        p = context.predictions_of(TokenPredictions)
        if not isinstance(context.adapter, Tagger):  # validate refuses this; a Python caller may still get here
            raise AuditError(f"auditors.fairness: adapter {type(context.adapter).__name__} cannot tag sentences")
        return token_fairness(context, p, context.adapter, self.settings)


class TokenExplainAuditor(Auditor[ExplainSettings]):
    """Integrated gradients of one word's tag per sentence onto the sentence's words."""

    name = "explain"
    Settings = ExplainSettings
    tasks = TOKENS
    requires = TokenAttributable

    @classmethod
    def metric_ids(cls, settings: ExplainSettings, config: AuditConfigBase) -> set[str]:
        shares = {f"protected_attribution_share[{f}]" for f in settings.protected_words}
        return {f"{cls.name}.{m}" for m in ("relative_delta_share_above_tolerance", *FAITHFULNESS, *shares)}

    @classmethod
    def check_config(cls, settings: ExplainSettings, config: AuditConfigBase) -> None:
        if settings.target not in TARGETS:
            raise AuditError(
                f"auditors.explain.target: '{settings.target}' is not one of {', '.join(TARGETS)} "
                f"for task {config.data.task} (the model's tag at the word, or the gold one)"
            )
        for feature in settings.protected_words:
            if feature not in config.data.sensitive_features:
                raise AuditError(f"auditors.explain.protected_words: '{feature}' is not in data.sensitive_features")

    def run(self, context: AuditContext) -> TokenExplainResult:
        if not isinstance(context.adapter, TokenAttributable):  # validate refuses this
            raise AuditError(f"auditors.explain: adapter {type(context.adapter).__name__} cannot attribute tags")
        return token_explain(context, self.settings)


class TokenPrivacyAuditor(Auditor[PrivacySettings]):
    """Token-classification heads trained with DP-SGD at each epsilon, and sentence-level membership inference."""

    name = "privacy"
    Settings = PrivacySettings
    tasks = TOKENS
    requires = TokenRetrainable
    refuses: ClassVar[dict[str, str]] = {
        "threshold": "a tagger takes each word's most probable tag: there is no decision threshold",
        "pooling": "a token head reads every word's own position: there is nothing to pool",
        "min_group_size": "token runs are compared on the name probes, whose groups follow their min_names",
    }

    @classmethod
    def metric_ids(cls, settings: PrivacySettings, config: AuditConfigBase) -> set[str]:
        return {f"{cls.name}.{m}" for m in privacy_ids(settings, _probes(config))}

    @classmethod
    def check_adapter(cls, settings: PrivacySettings, config: AuditConfigBase, adapter_cls: type) -> None:
        super().check_adapter(settings, config, adapter_cls)
        settings.grid()
        if issubclass(adapter_cls, TokenRetrainable):
            adapter_cls.check_retrain(config.model, request(settings, config.seed))

    def run(self, context: AuditContext) -> TokenPrivacyResult:
        if not isinstance(context.adapter, TokenRetrainable):  # validate refuses this
            raise AuditError(f"auditors.privacy: adapter {type(context.adapter).__name__} cannot be retrained")
        return token_privacy(context, self.settings)


def _probes(config: AuditConfigBase) -> list[str]:
    """The fairness auditor's name probes: token DP runs are probed with them (the fairness cost of privacy)."""
    fairness = getattr(config.auditors, "fairness", None)
    return list(fairness.name_probes) if fairness is not None else []
