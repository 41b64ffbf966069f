"""``mitigation``: what removing a disparity costs, method by method, and the fix exported.

Each method is fitted on a seeded carve-out of the training split (never on the test rows) and
judged on the test split with the fairness core and its intervals, beside the unmitigated model
on the same rows. Post-processing (group thresholds) needs only scores, so it works for every
binary adapter; reductions refit the model and need the ``refit`` capability.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from auditkit.adapters.capabilities import Refittable
from auditkit.auditors.base import AuditContext, Auditor
from auditkit.auditors.fairness import disparity_value, slice_summary
from auditkit.config import AuditConfigBase, StrictModel
from auditkit.errors import AuditError
from auditkit.mitigation.evaluate import Evaluation, Judged, evaluate, fit_rows, rows_of
from auditkit.mitigation.methods import MethodSpec, fit_method
from auditkit.predictions import Predictions
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.groups import DISPARITIES, GroupRules

UNMITIGATED = "none"


class MitigationSettings(StrictModel):
    sensitive_feature: str | None = Field(None, description="The feature to mitigate for; default: the first one.")
    methods: dict[str, MethodSpec] = Field(
        description="Named methods, e.g. threshold_dp: {method: threshold, constraint: demographic_parity}; "
        "the name is the gate slice method=<name>.",
        min_length=1,
    )
    validation_share: float = Field(
        0.3, gt=0, lt=1, description="Share of the training split the methods are fitted on (seeded carve-out)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_boot: int = Field(1000, ge=50, le=100_000, description="Bootstrap replicates for every interval.")
    min_group_size: int = Field(30, ge=1, description="Smaller groups are reported but left out of disparities.")
    min_class_size: int = Field(10, ge=1, description="Fewest positives or negatives for TPR and FPR.")
    method: Literal["between_groups", "to_overall"] = "between_groups"
    small_groups: Literal["inconclusive", "exclude"] = "inconclusive"

    def rules(self) -> GroupRules:
        return GroupRules(self.min_group_size, self.min_class_size, self.method, self.confidence, self.n_boot)

    def feature(self, config: AuditConfigBase) -> str:
        return self.sensitive_feature or config.data.sensitive_features[0]


class MethodResult(BaseModel):
    method: str
    constraint: str | None
    strength: float | None
    uses_sensitive_feature: bool  # at decision time: group thresholds treat groups differently
    accuracy: float | None
    accuracy_ci: list[float] | None
    accuracy_cost: float | None  # unmitigated accuracy minus this method's, paired on the same rows
    accuracy_cost_ci: list[float] | None
    by_group: dict[str, dict[str, Any]]
    disparities: dict[str, Any]
    pareto: list[dict[str, Any]] = []  # one point per strength: strength, accuracy, disparity
    reason: str | None = None


class MitigationResult(AuditorResult):
    sensitive_feature: str
    fitted_on: str
    n_fit: int
    n_eval: int
    seed: int
    data_sha256: str
    small_groups: str
    fairness_method: str
    methods: dict[str, MethodResult]  # "none" first: the unmitigated model on the same rows
    export: dict[str, Any]  # mitigation.json

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.pop("export")
        return out

    def documents(self) -> dict[str, Any]:
        return {"mitigation.json": self.export}

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for name, m in self.methods.items():
            out[f"accuracy[method={name}]"] = MetricValue(m.accuracy, _tuple(m.accuracy_ci), m.reason)
            if name != UNMITIGATED:
                reason = m.reason or (None if m.accuracy_cost is not None else "accuracy undefined")
                out[f"accuracy_cost[method={name}]"] = MetricValue(m.accuracy_cost, _tuple(m.accuracy_cost_ci), reason)
            for metric in DISPARITIES:
                key = f"{metric}[{self.sensitive_feature}|method={name}]"
                if m.disparities:
                    out[key] = disparity_value(
                        metric, m.disparities, m.by_group, self.small_groups, self.fairness_method, "mitigation"
                    )
                else:
                    out[key] = MetricValue(None, reason=m.reason or "not evaluated")
        return out


def _tuple(ci: list[float] | None) -> tuple[float, float] | None:
    return (ci[0], ci[1]) if ci else None


class MitigationAuditor(Auditor[MitigationSettings]):
    """Fairlearn's post-processing and reductions, fitted off the test rows and judged on them."""

    name = "mitigation"
    Settings = MitigationSettings
    tasks: ClassVar[tuple[str, ...]] = ("binary",)

    @classmethod
    def metric_ids(cls, settings: MitigationSettings, config: AuditConfigBase) -> set[str]:
        feature = settings.feature(config) if config.data.sensitive_features else "?"
        ids = set()
        for name in [UNMITIGATED, *settings.methods]:
            ids.add(f"{cls.name}.accuracy[method={name}]")
            if name != UNMITIGATED:
                ids.add(f"{cls.name}.accuracy_cost[method={name}]")
            ids |= {f"{cls.name}.{m}[{feature}|method={name}]" for m in DISPARITIES}
        return ids

    @classmethod
    def check_config(cls, settings: MitigationSettings, config: AuditConfigBase) -> None:
        known = config.data.sensitive_features
        if not known:
            raise AuditError("auditors.mitigation: data.sensitive_features is empty; name the feature to mitigate for")
        if settings.feature(config) not in known:
            raise AuditError(
                f"auditors.mitigation.sensitive_feature: '{settings.sensitive_feature}' is not in "
                "data.sensitive_features"
            )
        if UNMITIGATED in settings.methods:
            raise AuditError(f"auditors.mitigation.methods: '{UNMITIGATED}' names the unmitigated model; rename it")

    @classmethod
    def check_adapter(cls, settings: MitigationSettings, config: AuditConfigBase, adapter_cls: type) -> None:
        super().check_adapter(settings, config, adapter_cls)
        for name, spec in settings.methods.items():
            if spec.method != "threshold" and not issubclass(adapter_cls, Refittable):
                adapter = getattr(adapter_cls, "name", adapter_cls.__name__)
                raise AuditError(
                    f"auditors.mitigation.methods.{name}: {spec.method} refits the model, which adapter '{adapter}' "
                    "cannot (only scikit-learn pipelines can be refitted); use method: threshold, which needs only "
                    "scores"
                )

    def run(self, context: AuditContext) -> MitigationResult:
        s = self.settings
        feature = s.feature(context.config)
        test = context.predictions_of(Predictions, "test")
        split = context.data.test
        fit = fit_rows(context, s.validation_share, feature)
        if fit.judged_on is not None:  # no training split: judged on the audited rows the fit did not see
            test, split = rows_of(test, fit.judged_on), split.subset(fit.judged_on)
        groups = split.frame[feature].astype(str).to_numpy()
        evaluation = Evaluation(test, groups, s.rules(), context.seed)
        reads_feature = feature in getattr(context.adapter, "columns", [])
        methods = {UNMITIGATED: _result(evaluate(evaluation, test.y_pred), "none", None, None, reads_feature)}
        export: list[dict[str, Any]] = []
        for name, spec in s.methods.items():
            strengths = spec.strengths or [None]
            fitted = [fit_method(spec, strength, fit, context) for strength in strengths]
            decisions = [f.decide(test, groups, split, context) for f in fitted]
            judged = [evaluate(evaluation, decisions[0], paired_with=test.y_pred)]
            judged += [evaluate(evaluation, d) for d in decisions[1:]]
            uses = spec.method == "threshold" or reads_feature
            methods[name] = _result(judged[0], spec.method, spec.constraint, strengths[0], uses)
            methods[name].pareto = [
                {"strength": strength, **evaluation.point(j, spec.constraint)}
                for strength, j in zip(strengths, judged, strict=True)
            ]
            export.append({"name": name, **fitted[0].export()})
        return MitigationResult(
            sensitive_feature=feature,
            fitted_on=fit.description,
            n_fit=len(fit.y),
            n_eval=len(test),
            seed=context.seed,
            data_sha256=context.data.sha256,
            small_groups=s.small_groups,
            fairness_method=s.method,
            methods=methods,
            export={
                "schema_version": 1,
                "audit": context.config.name,
                "data_sha256": context.data.sha256,
                "seed": context.seed,
                "sensitive_feature": feature,
                "positive_label": str(test.classes[1]),
                "methods": export,
            },
        )


def _result(e: Judged, method: str, constraint: str | None, strength: float | None, uses: bool) -> MethodResult:
    by_group, disparities = slice_summary(e.report)
    return MethodResult(
        method=method,
        constraint=constraint,
        strength=strength,
        uses_sensitive_feature=uses,
        accuracy=e.accuracy.value,
        accuracy_ci=list(e.accuracy.ci) if e.accuracy.ci else None,
        accuracy_cost=e.cost.value if e.cost else None,
        accuracy_cost_ci=list(e.cost.ci) if e.cost and e.cost.ci else None,
        by_group=by_group,
        disparities=disparities,
        reason=e.accuracy.reason,
    )
