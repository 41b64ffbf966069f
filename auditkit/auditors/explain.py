"""``explain``: Integrated-Gradients attributions, checked for completeness and faithfulness."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr, field_validator, model_validator
from scipy.special import softmax

from auditkit.adapters.capabilities import Attributable
from auditkit.auditors.base import AuditContext, Auditor
from auditkit.config import AuditConfigBase, StrictModel
from auditkit.errors import AuditError
from auditkit.explain import perturbation, tabular_ig, text_ig, token_ig  # noqa: F401  (built-in engines register)
from auditkit.explain.common import STEP_SCHEDULE, Attribution
from auditkit.explain.engines import EngineOptions, engine_for
from auditkit.explain.faithfulness import faithfulness
from auditkit.explain.sharded import EngineFactory, explain_sharded
from auditkit.explain.views import ProtectedTerms, protected_shares, top_units, unmatched_terms
from auditkit.predictions import Predictions
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.intervals import bootstrap_means, percentile_interval

GATEABLE = ("relative_delta_share_above_tolerance", "comprehensiveness_aopc", "sufficiency_aopc")


class ExplainSettings(StrictModel):
    n_examples: int = Field(64, ge=1, description="Examples to explain, stratified over groups and correctness.")
    ids: list[str] = Field(default_factory=list, description="Ids to explain in addition to the sample.")
    target: str = Field(
        "predicted",
        description="Output explained: predicted, or positive / negative (binary), or a class name (multiclass).",
    )
    output: Literal["logit", "probability"] = Field("logit", description="What the attributions add up to.")
    baseline_token: Literal["pad", "mask", "unk"] = "pad"
    tolerance: float = Field(0.01, gt=0, description="Largest relative completeness error accepted.")
    quadrature: Literal["midpoint", "gauss_legendre"] = Field(
        "midpoint", description="Quadrature along the path (Captum's riemann_middle or gausslegendre)."
    )
    start_steps: int = Field(16, description=f"Steps every example starts with, one of {list(STEP_SCHEDULE)}.")
    max_steps: int = Field(256, description=f"Most steps an example escalates to, one of {list(STEP_SCHEDULE)}.")
    token_budget: int | None = Field(
        None, ge=256, description="Tokens per forward/backward pass; default 2048 on CPU, 16384 on CUDA."
    )
    protected_words: dict[str, ProtectedTerms] = Field(
        default_factory=dict, description="Per sensitive feature, the words that name it."
    )
    top_k: int = Field(15, ge=1)
    min_count: int = Field(3, ge=1, description="Fewest occurrences for a word to enter the top lists.")
    faithfulness_percents: list[float] = Field(default_factory=lambda: [1, 5, 10, 20, 50])
    n_boot: int = Field(1000, ge=50, le=100_000)
    include_outside: bool = Field(
        False,
        description="Token classification: also explain words that are O in both gold and prediction "
        "(attributing the O tag).",
    )

    @field_validator("start_steps", "max_steps")
    @classmethod
    def _on_schedule(cls, value: int) -> int:
        if value not in STEP_SCHEDULE:
            raise ValueError(f"must be one of {list(STEP_SCHEDULE)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ExplainSettings:
        if self.max_steps < self.start_steps:
            raise ValueError("max_steps must be at least start_steps")
        return self

    @property
    def schedule(self) -> list[int]:
        """The step counts an example may go through, from start_steps to max_steps."""
        return [k for k in STEP_SCHEDULE if self.start_steps <= k <= self.max_steps]


class ExplainResult(AuditorResult):
    method: str = "integrated_gradients"
    n_examples: int
    target: str
    output: str
    tolerance: float
    steps: dict[str, Any]
    relative_delta: dict[str, float]
    top_tokens: list[dict[str, Any]]
    top_negative_tokens: list[dict[str, Any]]
    protected_attribution_share: dict[str, float]
    protected_attribution_share_ci: dict[str, list[float] | None]
    protected_attribution_share_by_group: dict[str, dict[str, float]]
    # Listed words / patterns that matched no attributed unit: a share of 0 there means "absent", not "ignored".
    protected_words_missing: dict[str, list[str]] = Field(default_factory=dict)
    faithfulness: dict[str, Any]
    units: Literal["words", "features"] = "words"  # what the attributions are over
    baseline: str = "pad"  # the IG baseline: a text of this special token, or the mean training encoding
    # Sampling engines: how settled the estimates are (median, p95, share above tolerance of each example's
    # relative standard error); None for exact-path engines like IG.
    relative_standard_error: dict[str, Any] | None = None
    _records: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def attribution_records(self) -> list[dict[str, Any]]:
        return self._records

    def metric_values(self) -> dict[str, MetricValue]:
        out = {
            "relative_delta_share_above_tolerance": MetricValue(self.relative_delta["share_above_tolerance"]),
            "comprehensiveness_aopc": MetricValue(self.faithfulness["comprehensiveness_aopc"]),
            "sufficiency_aopc": MetricValue(self.faithfulness["sufficiency_aopc"]),
        }
        for feature, share in self.protected_attribution_share.items():
            ci = self.protected_attribution_share_ci.get(feature)
            out[f"protected_attribution_share[{feature}]"] = MetricValue(share, tuple(ci) if ci else None)
        return out


def stratified_sample(strata: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions spread over strata in proportion to their size, at least one from each."""
    names, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    if n >= len(strata):
        return np.arange(len(strata))
    quota = np.minimum(sizes, np.maximum(1, np.floor(sizes / sizes.sum() * n).astype(int)))
    while quota.sum() < n:  # hand out what rounding left, largest remainder first
        room = np.flatnonzero(quota < sizes)
        gap = sizes[room] / sizes.sum() * n - quota[room]
        quota[room[np.argmax(gap)]] += 1
    while quota.sum() > n:
        quota[np.argmax(quota)] -= 1
    picks = [rng.choice(np.flatnonzero(inverse == k), size=q, replace=False) for k, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picks))


class ExplainAuditor(Auditor[ExplainSettings]):
    """Integrated-Gradients attributions: completeness-checked, word-level, with faithfulness scores."""

    name = "explain"
    Settings = ExplainSettings
    requires = Attributable
    refuses: ClassVar[dict[str, str]] = {"include_outside": "O words are a token-classification notion"}

    @classmethod
    def metric_ids(cls, settings: ExplainSettings, config: AuditConfigBase) -> set[str]:
        ids = {f"{cls.name}.{m}" for m in GATEABLE}
        return ids | {f"{cls.name}.protected_attribution_share[{f}]" for f in settings.protected_words}

    @classmethod
    def check_adapter(cls, settings: ExplainSettings, config: AuditConfigBase, adapter_cls: type) -> None:
        super().check_adapter(settings, config, adapter_cls)
        if engine_for(adapter_cls) is None:
            raise AuditError(
                f"auditors.explain: no attribution engine is registered for adapter '{config.model.adapter}' "
                f"({adapter_cls.__name__}) or any of its capability types"
            )

    @classmethod
    def check_config(cls, settings: ExplainSettings, config: AuditConfigBase) -> None:
        data = config.data
        allowed = (
            ["predicted", *(data.classes or [])] if data.task == "multiclass" else ["predicted", "positive", "negative"]
        )
        if settings.target not in allowed and not (data.task == "multiclass" and data.classes is None):
            raise AuditError(f"auditors.explain.target: '{settings.target}' is not one of {', '.join(allowed)}")
        for feature in settings.protected_words:
            if feature not in config.data.sensitive_features:
                raise AuditError(f"auditors.explain.protected_words: '{feature}' is not in data.sensitive_features")

    def run(self, context: AuditContext) -> ExplainResult:
        s = self.settings
        test, predictions = context.data.test, context.predictions_of(Predictions)
        rng = np.random.default_rng(context.seed)
        chosen = self._choose(context, rng)
        adapter = context.adapter
        label = self._label(predictions.y_pred, predictions.classes, context.data.task)[chosen]
        targets = [int(t) for t in adapter.output_index(label)]
        f_inputs = full = None
        if predictions.logits is not None:  # reuse the run's forward pass: F(x) needs no second one
            logits = predictions.logits[chosen]
            probabilities = softmax(logits, axis=1)
            full = probabilities[np.arange(len(chosen)), targets]
            f_inputs = (logits if s.output == "logit" else probabilities)[np.arange(len(chosen)), targets]
        engine_cls = engine_for(type(adapter))
        if engine_cls is None:  # validate refuses this; a Python caller may still get here
            raise AuditError(f"auditors.explain: no attribution engine for {type(adapter).__name__}")
        options = EngineOptions(s.output, s.baseline_token, s.token_budget, s.quadrature)
        engine = engine_cls.create(adapter, context.data, options)
        # One shard in process (this engine); on Ray one per worker, each worker loading the model once.
        factory = EngineFactory(
            engine_cls, type(adapter), context.config.model, context.config.data, context.data, options, adapter, engine
        )
        attributions, texts = explain_sharded(
            context.executor, factory, test, chosen, targets, f_inputs, s.tolerance, s.schedule, context.progress
        )
        result = self._summarise(context, chosen, attributions, texts, label, engine, rng, full)
        result.units, result.baseline = engine.units, engine.baseline_name
        result._records = [_record(a, t) for a, t in zip(attributions, texts, strict=True)]
        return result

    def _label(self, y_pred: np.ndarray, classes: tuple[str, ...], task: str) -> np.ndarray:
        """The label index explained for each test row: the predicted one, or the one the target names."""
        target = self.settings.target
        if target == "predicted":
            return y_pred
        names = classes if task == "multiclass" else ("negative", "positive")
        if target not in names:
            raise AuditError(f"auditors.explain.target: '{target}' is not one of predicted, {', '.join(names)}")
        return np.full_like(y_pred, names.index(target))

    def _choose(self, context: AuditContext, rng: np.random.Generator) -> np.ndarray:
        test, predictions = context.data.test, context.predictions_of(Predictions)
        groups = (
            test.frame[list(context.data.sensitive_features)].astype(str).agg("*".join, axis=1).to_numpy()
            if context.data.sensitive_features
            else np.full(len(test), "")
        )
        strata = np.char.add(groups.astype(str), np.where(predictions.y_pred == test.y, "|correct", "|incorrect"))
        chosen = set(stratified_sample(strata, self.settings.n_examples, rng).tolist())
        position = {id_: i for i, id_ in enumerate(test.ids)}
        for id_ in self.settings.ids:
            if id_ not in position:
                raise AuditError(f"auditors.explain.ids: '{id_}' is not in the test split")
            chosen.add(position[id_])
        return np.array(sorted(chosen), dtype=int)

    def _summarise(
        self,
        context: AuditContext,
        chosen: np.ndarray,
        attributions: list[Attribution],
        texts: list[str | None],
        label: np.ndarray,
        engine: Any,
        rng: np.random.Generator,
        full: np.ndarray | None,
    ) -> ExplainResult:
        s = self.settings
        steps = np.array([a.steps for a in attributions])
        schedule = list(getattr(engine, "schedule", s.schedule))  # a sampling engine counts permutations
        deltas = np.array([a.relative_delta for a in attributions])
        # Binary: signed toward the favourable label; multiclass: toward the class each example explains.
        toward = list(label == 1) if context.data.task != "multiclass" else [True] * len(label)
        positive, negative = top_units(attributions, toward, s.top_k, s.min_count)
        shares, share_ci, by_group, missing = {}, {}, {}, {}
        frame = context.data.test.frame.iloc[chosen]
        for feature, terms in s.protected_words.items():
            per_example = protected_shares(attributions, texts, terms)
            if unmatched := unmatched_terms(attributions, texts, terms):
                missing[feature] = unmatched
            shares[feature] = float(per_example.mean())
            interval, _ = percentile_interval(bootstrap_means(per_example[:, None], s.n_boot, rng)[:, 0], 0.95)
            share_ci[feature] = list(interval) if interval else None
            groups = frame[feature].astype(str).to_numpy()
            by_group[feature] = {g: float(per_example[groups == g].mean()) for g in sorted(set(groups))}
        faith = faithfulness(attributions, engine.perturb, engine.probabilities, s.faithfulness_percents, rng, full)
        return ExplainResult(
            method=engine.method,
            n_examples=len(attributions),
            target=s.target,
            output=s.output,
            tolerance=s.tolerance,
            steps={
                **({"quadrature": s.quadrature} if not hasattr(engine, "schedule") else {"unit": "permutations"}),
                "mean": float(steps.mean()),
                "max": int(steps.max()),
                "histogram": {str(k): int((steps == k).sum()) for k in schedule},
            },
            relative_standard_error=_convergence(attributions, s.tolerance),
            relative_delta={
                "median": float(np.median(deltas)),
                "p95": float(np.percentile(deltas, 95)),
                "share_above_tolerance": float((deltas > s.tolerance).mean()),
            },
            top_tokens=positive,
            top_negative_tokens=negative,
            protected_attribution_share=shares,
            protected_attribution_share_ci=share_ci,
            protected_attribution_share_by_group=by_group,
            protected_words_missing=missing,
            faithfulness={
                "comprehensiveness_aopc": faith.comprehensiveness_aopc,
                "sufficiency_aopc": faith.sufficiency_aopc,
                "random_comprehensiveness_aopc": faith.random_comprehensiveness_aopc,
                "random_sufficiency_aopc": faith.random_sufficiency_aopc,
                "better_than_random": faith.better_than_random,
                "percents": list(s.faithfulness_percents),
            },
        )


def _convergence(attributions: list[Attribution], tolerance: float) -> dict[str, Any] | None:
    """Sampling engines: how settled the estimates are (None for exact-path engines like IG)."""
    errors = np.array([a.relative_standard_error for a in attributions if a.relative_standard_error is not None])
    if len(errors) == 0:
        return None
    return {
        "measure": "largest feature's standard error across permutation batches / sum of |attribution| "
        "(absolute when that sum is ~0)",
        "median": float(np.median(errors)),
        "p95": float(np.percentile(errors, 95)),
        "share_above_tolerance": float((errors > tolerance).mean()),
    }


def _record(a: Attribution, text: str | None) -> dict[str, Any]:
    """One line of attributions.jsonl."""
    tokens = [
        {"token": u, "score": float(v)} | ({"start": sp[0], "end": sp[1]} if a.spans else {})
        for u, v, sp in zip(a.units, a.scores, a.spans or [None] * len(a.units), strict=True)
    ]
    record = {
        "id": a.id,
        "target": a.target,
        "tokens": tokens,
        "delta": a.relative_delta,
        "steps": a.steps,
        "f_input": a.f_input,
        "f_baseline": a.f_baseline,
    }
    if a.relative_standard_error is not None:
        record["relative_standard_error"] = a.relative_standard_error
    if text is not None:
        record["text"] = text
    return record
