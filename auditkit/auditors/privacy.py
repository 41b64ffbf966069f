"""``privacy``: DP fine-tuning at several epsilons, what it costs in utility and fairness,
and a membership-inference check of every run and of the audited model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from scipy.special import softmax

from auditkit.adapters.capabilities import Retrainable, RetrainRequest, TokenRetrainable
from auditkit.auditors.base import AuditContext, Auditor
from auditkit.auditors.performance import headline_metrics
from auditkit.config import AuditConfigBase, StrictModel
from auditkit.errors import AuditError
from auditkit.ner.privacy_audit import metric_ids as token_metric_ids
from auditkit.ner.privacy_audit import token_privacy
from auditkit.predictions import Predictions
from auditkit.privacy.mia import AttackResult, balanced, cross_entropy, loss_attack
from auditkit.privacy.runs import RunOutcome, RunSettings, train_run
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.groups import DISPARITIES, GroupRules, group_metrics
from auditkit.stats.paired import paired_changes
from auditkit.training import Trainable

GROUP_RATES = ("accuracy", "tpr", "fpr")


class PrivacySettings(StrictModel):
    epsilons: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [1.0, 3.0, 8.0], min_length=1, description="Target epsilons, each > 0 and finite."
    )
    delta: float | None = Field(None, gt=0, lt=1, description="Default: 1 / (10 x training rows), below 1/N.")
    accountant: Literal["rdp", "prv"] = "rdp"
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: int = Field(3, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=2, description="Expected logical batch (Poisson sampling).")
    max_physical_batch_size: int = Field(64, ge=1, description="Memory bound (Opacus BatchMemoryManager).")
    train_top_layers: int = Field(1, ge=0, description="Text models: train the top N layers, pooler, classifier.")
    pooling: Literal["pooler", "mean"] = Field(
        "pooler", description="Text models: the [CLS] pooler as in the audited model, or mean of token states."
    )
    base: str | None = Field(None, description="Text models: base model for the runs; default model.build.base.")
    grad_sample_mode: Literal["hooks", "ghost", "ew"] = Field(
        "ew", description="Opacus per-sample gradients: ew (expanded weights, fastest here), hooks or ghost clipping."
    )
    cache_activations: bool = True
    n_boot: int = Field(1000, ge=50)
    min_group_size: int = Field(30, ge=1)

    @field_validator("epsilons")
    @classmethod
    def _distinct(cls, value: list[float]) -> list[float]:
        repeated = sorted({e for e in value if value.count(e) > 1})
        if repeated:
            raise ValueError(f"epsilon {repeated[0]:g} is listed twice")
        return value


class PrivacyRun(BaseModel):
    target_epsilon: float | None
    epsilon: float | None
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float | None
    accountant: str | None
    epochs: int
    seconds: float
    metrics: dict[str, Any]
    by_group: dict[str, dict[str, dict[str, float | None]]]
    fairness_cost: dict[str, dict[str, Any]]
    mia: AttackResult
    flags: list[str] = Field(default_factory=list)


class PrivacyResult(AuditorResult):
    trained: str
    delta: float
    runs: list[PrivacyRun]
    non_private: PrivacyRun
    audited_model: dict[str, AttackResult]

    def metric_values(self) -> dict[str, MetricValue]:
        audited = self.audited_model["mia"]
        out = {
            "mia_auc[audited]": MetricValue(audited.auc),
            "epsilon_lower_bound[audited]": MetricValue(audited.epsilon_lower_bound),
        }
        for run in self.runs:
            tag = f"eps={run.target_epsilon:g}"
            out[f"accuracy[{tag}]"] = MetricValue(run.metrics["accuracy"])
            out[f"mia_auc[{tag}]"] = MetricValue(run.mia.auc)
            for slice_, changes in run.fairness_cost.items():
                for key, value in changes.items():
                    if key.endswith("_reason") or key == "ci":
                        continue
                    ci = changes["ci"].get(key)
                    out[f"{key}[{slice_}@{tag}]"] = MetricValue(
                        value, tuple(ci) if ci else None, changes.get(f"{key}_reason")
                    )
        return out


def default_delta(settings: PrivacySettings, n_train: int) -> float:
    """The configured delta, or 1 / (10 N): comfortably below 1/N, as DP practice asks."""
    return settings.delta if settings.delta is not None else 1.0 / (10 * n_train)


class PrivacyAuditor(Auditor[PrivacySettings]):
    """Opacus DP fine-tuning sweep with utility, fairness cost and membership inference."""

    name = "privacy"
    Settings = PrivacySettings
    requires = Retrainable

    @classmethod
    def metric_ids(cls, settings: PrivacySettings, config: AuditConfigBase) -> set[str]:
        if config.data.task == "token-classification":
            return {f"{cls.name}.{m}" for m in token_metric_ids(settings.epsilons)}
        ids = {f"{cls.name}.mia_auc[audited]", f"{cls.name}.epsilon_lower_bound[audited]"}
        for eps in settings.epsilons:
            tag = f"eps={eps:g}"
            ids |= {f"{cls.name}.accuracy[{tag}]", f"{cls.name}.mia_auc[{tag}]"}
            for feature in config.data.sensitive_features:
                ids.add(f"{cls.name}.accuracy_drop_gap[{feature}@{tag}]")
                ids |= {f"{cls.name}.{m}_change[{feature}@{tag}]" for m in DISPARITIES}
        return ids

    @classmethod
    def check_adapter(cls, settings: PrivacySettings, config: AuditConfigBase, adapter_cls: type) -> None:
        if issubclass(adapter_cls, TokenRetrainable):  # token classifiers: DP heads on word features
            return
        super().check_adapter(settings, config, adapter_cls)
        adapter_cls.check_retrain(config.model, request(settings, config.seed))

    def run(self, context: AuditContext) -> PrivacyResult:
        s = self.settings
        if isinstance(context.adapter, TokenRetrainable):
            return token_privacy(context, s)  # type: ignore[return-value]
        data = context.data
        delta = default_delta(s, len(data.train))
        trainable = self._trainable(context)
        run_settings = RunSettings(
            s.epochs,
            s.learning_rate,
            s.batch_size,
            s.max_grad_norm,
            delta,
            s.accountant,
            s.max_physical_batch_size,
            s.grad_sample_mode,
            context.seed,
        )
        device = context.adapter.device
        rng = np.random.default_rng(context.seed)
        members, nonmembers = balanced(np.arange(len(data.train)), np.arange(len(data.test)), rng)
        reference = train_run(trainable, run_settings, None, device, context.progress)
        reference_test = self._predictions(context, reference.test_logits)
        non_private = self._summarise(context, reference, reference_test, None, members, nonmembers, delta, rng)
        runs = []
        for eps in s.epsilons:
            outcome = train_run(trainable, run_settings, eps, device, context.progress)
            predictions = self._predictions(context, outcome.test_logits)
            runs.append(self._summarise(context, outcome, predictions, reference_test, members, nonmembers, delta, rng))
        # The audited model scores only the sampled members: no need to score the whole training split.
        train_p = context.adapter.predict(data.train.subset(members), context.progress)
        test_p = context.predictions("test")
        audited = loss_attack(
            cross_entropy(_probability_of_label(train_p)),
            cross_entropy(_probability_of_label(test_p))[nonmembers],
            delta,
        )
        return PrivacyResult(
            trained=trainable.description,
            delta=delta,
            runs=runs,
            non_private=non_private,
            audited_model={"mia": audited},
        )

    def _trainable(self, context: AuditContext) -> Trainable:
        adapter = context.adapter
        if not isinstance(adapter, Retrainable):  # validate refuses this; a Python caller may still get here
            raise AuditError(f"auditors.privacy: adapter {type(adapter).__name__} cannot be retrained")
        return adapter.trainable(context.data, request(self.settings, context.seed), context.progress)

    def _predictions(self, context: AuditContext, logits: np.ndarray) -> Predictions:
        test = context.data.test
        scores = softmax(logits, axis=1)[:, 1]
        return Predictions(test.ids, test.y, scores, (scores >= 0.5).astype(np.int64), 0, logits, test.classes)

    def _summarise(
        self,
        context: AuditContext,
        outcome: RunOutcome,
        test_p: Predictions,
        reference: Predictions | None,
        members: np.ndarray,
        nonmembers: np.ndarray,
        delta: float,
        rng: np.random.Generator,
    ) -> PrivacyRun:
        s, data = self.settings, context.data
        slices = [[f] for f in data.sensitive_features]
        rules = GroupRules(min_group_size=s.min_group_size, n_boot=s.n_boot)
        sensitive = data.test.frame
        reports = group_metrics(test_p.y_true, test_p.y_pred, test_p.scores, sensitive, slices, rules, rng)
        by_group = {
            name: {g: {r: rep.rates[r].value for r in GROUP_RATES} for g, rep in report.groups.items()}
            for name, report in reports.items()
        }
        cost: dict[str, dict[str, Any]] = {}
        if reference is not None:
            for name, changes in paired_changes(
                sensitive, test_p.y_true, reference.y_pred, test_p.y_pred, slices, rules, rng
            ).items():
                entry: dict[str, Any] = {"ci": {}}
                for key, e in changes.items():
                    entry[key] = e.value
                    entry["ci"][key] = list(e.ci) if e.ci else None
                    if e.reason:
                        entry[f"{key}_reason"] = e.reason
                cost[name] = entry
        train_loss = cross_entropy(_softmax_of_label(outcome.train_logits, data.train.y))
        test_loss = cross_entropy(_softmax_of_label(outcome.test_logits, data.test.y))
        attack = loss_attack(train_loss[members], test_loss[nonmembers], delta)
        flags = []
        if outcome.epsilon is not None and attack.epsilon_lower_bound > outcome.epsilon:
            flags.append(
                f"the attack's epsilon lower bound {attack.epsilon_lower_bound:.3g} exceeds the accounted "
                f"epsilon {outcome.epsilon:.3g}: a bug in accounting or in the audit"
            )
        private = outcome.target_epsilon is not None
        return PrivacyRun(
            target_epsilon=outcome.target_epsilon,
            epsilon=outcome.epsilon,
            delta=delta,
            noise_multiplier=outcome.noise_multiplier,
            sample_rate=outcome.sample_rate,
            steps=outcome.steps,
            max_grad_norm=s.max_grad_norm if private else None,
            accountant=s.accountant if private else None,
            epochs=s.epochs,
            seconds=round(outcome.seconds, 2),
            metrics=headline_metrics(test_p.y_true, test_p.y_pred, test_p.scores),
            by_group=by_group,
            fairness_cost=cost,
            mia=attack,
            flags=flags,
        )


def request(settings: PrivacySettings, seed: int) -> RetrainRequest:
    """What the DP runs ask the adapter to retrain."""
    return RetrainRequest(
        seed=seed,
        top_layers=settings.train_top_layers,
        pooling=settings.pooling,
        base=settings.base,
        cache_activations=settings.cache_activations,
    )


def _softmax_of_label(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    return softmax(logits, axis=1)[np.arange(len(y)), y]


def _probability_of_label(p: Predictions) -> np.ndarray:
    return np.where(p.y_true == 1, p.scores, 1 - p.scores)
