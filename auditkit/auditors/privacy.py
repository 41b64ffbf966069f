"""``privacy``: DP fine-tuning at several epsilons, what it costs in utility and fairness,
and membership inference (loss threshold and LiRA) against every run and the audited model.

Every run is tuned and thresholded on a validation carve-out of the training split, and a
run that learned nothing (constant predictions, balanced accuracy indistinguishable from
chance) is flagged: nothing derived from it is reported as a finding.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from torch.utils.data import ConcatDataset

from auditkit.adapters.capabilities import Retrainable, RetrainRequest
from auditkit.auditors.base import AuditContext, Auditor
from auditkit.auditors.performance import headline_metrics
from auditkit.auditors.performance_multiclass import multiclass_headline
from auditkit.config import AuditConfigBase, StrictModel
from auditkit.errors import AuditError
from auditkit.predictions import Predictions, expect
from auditkit.privacy.mia import AttackResult, balanced, cross_entropy, loss_attack
from auditkit.privacy.plan import RunSpec, plan_runs
from auditkit.privacy.selection import constant_reason, degenerate_reason, subset, validation_split
from auditkit.privacy.study import PrivacyRun, Study
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.groups import DISPARITIES
from auditkit.training import Trainable, TrainingData

GROUP_RATES = ("accuracy", "tpr", "fpr")


class SweepEntry(StrictModel):
    epsilon: float = Field(gt=0)
    max_grad_norm: float | None = Field(None, gt=0, description="Default: the audit's max_grad_norm.")
    learning_rate: float | None = Field(None, gt=0, description="Default: chosen on validation from learning_rate.")


class PrivacySettings(StrictModel):
    epsilons: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [1.0, 3.0, 8.0], min_length=1, description="Target epsilons, each > 0 and finite."
    )
    sweep: list[SweepEntry] = Field(
        default_factory=list, description="Extra runs at another clip norm or learning rate; ids eps=8,clip=0.5,lr=..."
    )
    delta: float | None = Field(None, gt=0, lt=1, description="Default: 1 / (10 x training rows), below 1/N.")
    accountant: Literal["rdp", "prv"] = "rdp"
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: int | list[int] = Field(3, description="One value, or a grid chosen on the validation carve-out.")
    learning_rate: float | list[float] = Field(1e-3, description="One value, or a grid chosen on validation.")
    validation_share: float = Field(0.2, gt=0, lt=1, description="Share of the training split held out for choices.")
    threshold: Literal["validation", "argmax"] = Field(
        "validation", description="validation: best balanced accuracy on the carve-out; argmax: as a plain classifier."
    )
    lira_shadows: int = Field(8, ge=0, description="Shadow models per attacked run for LiRA; 0 turns LiRA off.")
    batch_size: int = Field(64, ge=2, description="Expected logical batch (Poisson sampling).")
    max_physical_batch_size: int = Field(64, ge=1, description="Memory bound (Opacus BatchMemoryManager).")
    run_kind: Literal["probe", "top_layers", "lora"] = Field(
        "top_layers",
        description="Text models: probe (the cheap option: a classifier on frozen features, train_top_layers 0), "
        "top_layers (train_top_layers on cached activations) or lora (adapters on every attention layer).",
    )
    lora_rank: int = Field(8, ge=1, description="run_kind lora: rank of the adapters.")
    train_top_layers: int = Field(1, ge=0, description="Text models: train the top N layers, pooler, classifier.")
    pooling: Literal["pooler", "mean"] = Field(
        "pooler", description="Text models: the [CLS] pooler as in the audited model, or mean of token states."
    )
    base: str | None = Field(None, description="Text models: base model for the runs; default model.build.base.")
    grad_sample_mode: Literal["hooks", "ghost", "ew"] = Field(
        "ew", description="Opacus per-sample gradients: ew (expanded weights, fastest here), hooks or ghost clipping."
    )
    cache_activations: bool = True
    n_boot: int = Field(1000, ge=50, le=100_000)
    min_group_size: int = Field(30, ge=1)

    @field_validator("epsilons")
    @classmethod
    def _distinct(cls, value: list[float]) -> list[float]:
        repeated = sorted({e for e in value if value.count(e) > 1})
        if repeated:
            raise ValueError(f"epsilon {repeated[0]:g} is listed twice")
        return value

    @model_validator(mode="after")
    def _for_the_run_kind(self) -> PrivacySettings:
        """A setting of another run kind would be silently ignored: refuse it instead."""
        for key, kind in (("train_top_layers", "top_layers"), ("lora_rank", "lora")):
            if key in self.model_fields_set and self.run_kind != kind:
                raise ValueError(f"{key} applies to run_kind {kind}, not {self.run_kind}; remove it or change run_kind")
        return self

    def grid(self) -> tuple[list[float], list[int]]:
        rates = self.learning_rate if isinstance(self.learning_rate, list) else [self.learning_rate]
        epochs = self.epochs if isinstance(self.epochs, list) else [self.epochs]
        if not rates or not epochs or min(rates) <= 0 or min(epochs) < 1:
            raise AuditError("auditors.privacy: learning_rate and epochs need positive values")
        return rates, epochs

    def runs(self) -> list[RunSpec]:
        rates, epochs = self.grid()
        sweep = [(e.epsilon, e.max_grad_norm, e.learning_rate) for e in self.sweep]
        return plan_runs(self.epsilons, self.max_grad_norm, rates, epochs, sweep)


class PrivacyResult(AuditorResult):
    trained: str
    run_kind: str = "top_layers"
    delta: float
    n_fit: int
    n_validation: int
    runs: list[PrivacyRun]
    non_private: PrivacyRun
    audited_metrics: dict[str, Any]
    audited_degenerate: str | None = None
    audited_model: dict[str, AttackResult]

    def metric_values(self) -> dict[str, MetricValue]:
        audited = self.audited_model.get("mia")
        why = f"the audited model predicts one label for every row: {self.audited_degenerate}"
        out = {
            "mia_auc[audited]": MetricValue(audited.auc) if audited else MetricValue(None, reason=why),
            "epsilon_lower_bound[audited]": (
                MetricValue(audited.epsilon_lower_bound) if audited else MetricValue(None, reason=why)
            ),
        }
        for run in self.runs:
            tag = run.tag
            out[f"accuracy[{tag}]"] = MetricValue(run.metrics["accuracy"])
            out[f"mia_auc[{tag}]"] = (
                MetricValue(run.mia.auc) if run.mia else MetricValue(None, reason=run.attack_reason)
            )
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
        ids = {f"{cls.name}.mia_auc[audited]", f"{cls.name}.epsilon_lower_bound[audited]"}
        for spec in settings.runs():
            tag = spec.tag
            ids |= {f"{cls.name}.accuracy[{tag}]", f"{cls.name}.mia_auc[{tag}]"}
            for feature in config.data.sensitive_features:
                ids.add(f"{cls.name}.accuracy_drop_gap[{feature}@{tag}]")
                ids |= {f"{cls.name}.{m}_change[{feature}@{tag}]" for m in DISPARITIES}
        return ids

    @classmethod
    def check_adapter(cls, settings: PrivacySettings, config: AuditConfigBase, adapter_cls: type) -> None:
        super().check_adapter(settings, config, adapter_cls)
        settings.grid()
        adapter_cls.check_retrain(config.model, request(settings, config.seed))

    def run(self, context: AuditContext) -> PrivacyResult:
        s, data = self.settings, context.data
        whole = self._trainable(context)
        fit_rows, val_rows = validation_split(data.train.y, s.validation_share, context.seed)
        trainable = Trainable(whole.fresh, subset(whole.train, fit_rows), whole.test, whole.description)
        validation = subset(whole.train, val_rows)
        y_fit, y_val, y_test = data.train.y[fit_rows], data.train.y[val_rows], data.test.y
        delta = default_delta(s, len(fit_rows))
        rates, epochs = s.grid()
        rng = np.random.default_rng(context.seed)
        members, nonmembers = balanced(np.arange(len(fit_rows)), np.arange(len(data.test)), rng)
        population = TrainingData(ConcatDataset([trainable.train.dataset, whole.test.dataset]), whole.train.collate)
        study = Study(
            self.settings, context, trainable, validation, population, y_fit, y_val, y_test, members, nonmembers
        )
        reference_spec = RunSpec(None, s.max_grad_norm, tuple(rates), (max(epochs),), "non-private")
        # Every run trains as an executor task, then every LiRA shadow (a Ray cluster runs them at once).
        non_private, *runs = study.run_all([reference_spec, *s.runs()], delta, rng)
        # The audited model scores only the sampled members: no need to score the whole training split.
        test_p = context.predictions_of(Predictions)
        if test_p.n_classes > 2:
            audited_metrics = multiclass_headline(test_p.y_true, test_p.y_pred, test_p.n_classes)
        else:
            audited_metrics = headline_metrics(test_p.y_true, test_p.y_pred, test_p.scores)
        audited_degenerate = degenerate_reason(test_p.y_true, test_p.y_pred, s.n_boot, rng)
        audited: dict[str, AttackResult] = {}
        if constant_reason(test_p.y_pred) is None:  # a model at chance level can still memorise: attack it
            members_p = context.adapter.predict(data.train.subset(fit_rows[members]), context.progress)
            train_p = expect(Predictions, members_p, "auditors.privacy")
            audited["mia"] = loss_attack(
                cross_entropy(_probability_of_label(train_p)),
                cross_entropy(_probability_of_label(test_p))[nonmembers],
                delta,
            )
        return PrivacyResult(
            trained=trainable.description,
            run_kind=s.run_kind,
            delta=delta,
            n_fit=len(fit_rows),
            n_validation=len(val_rows),
            runs=[r.result for r in runs],
            non_private=non_private.result,
            audited_metrics=audited_metrics,
            audited_degenerate=audited_degenerate,
            audited_model=audited,
        )

    def _trainable(self, context: AuditContext) -> Trainable:
        adapter = context.adapter
        if not isinstance(adapter, Retrainable):  # validate refuses this; a Python caller may still get here
            raise AuditError(f"auditors.privacy: adapter {type(adapter).__name__} cannot be retrained")
        return adapter.trainable(context.data, request(self.settings, context.seed), context.progress)


def request(settings: PrivacySettings, seed: int) -> RetrainRequest:
    """What the DP runs ask the adapter to retrain."""
    return RetrainRequest(
        seed=seed,
        top_layers=0 if settings.run_kind == "probe" else settings.train_top_layers,
        pooling=settings.pooling,
        base=settings.base,
        cache_activations=settings.cache_activations,
        kind=settings.run_kind,
        lora_rank=settings.lora_rank,
    )


def _probability_of_label(p: Predictions) -> np.ndarray:
    return p.probabilities[np.arange(len(p)), p.y_true]
