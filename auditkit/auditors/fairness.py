"""``fairness``: group rates, disparities with intervals, and counterfactual token swaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from auditkit.auditors.base import AuditContext, Auditor
from auditkit.config import AuditConfigBase, StrictModel
from auditkit.data import Split
from auditkit.errors import AuditError
from auditkit.predictions import Predictions, expect
from auditkit.results import AuditorResult, MetricValue
from auditkit.stats.groups import (
    DISPARITIES,
    Estimate,
    GroupRules,
    SliceReport,
    group_metrics,
    group_metrics_by_class,
    slice_name,
)
from auditkit.stats.intervals import bootstrap_means, percentile_interval
from auditkit.streaming.counts import CountedPredictions
from auditkit.streaming.fairness import group_metrics_from_counts, with_binning_errors
from auditkit.text_swaps import TextSwap

COUNTERFACTUAL_METRICS = ("counterfactual_flip_rate", "counterfactual_mean_abs_score_change")


class NameProbe(StrictModel):
    """Templates with a person slot filled with names of demographic groups (Mishra, He & Belli 2020)."""

    names: Path = Field(description="CSV of first names, relative to the config file.")
    group_column: str = Field(description="Column of the names file that holds each name's group, e.g. sex.")
    name_column: str = "name"
    templates: Path | None = Field(None, description="Your own templates (one per line, one {name} word each).")
    person_type: str = Field("person", description="The entity type the model uses for people, e.g. PER.")
    min_names: int = Field(10, ge=1, description="Groups with fewer names are reported but not compared.")
    n_templates: int | None = Field(None, ge=1, description="Use only the first N templates (cost: names x N).")


class FairnessSettings(StrictModel):
    features: list[str] | None = Field(None, description="Sensitive features to slice by; default: all of them.")
    intersections: list[list[str]] = Field(default_factory=list, description="e.g. [[sex, age_group]]")
    method: Literal["between_groups", "to_overall"] = "between_groups"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_boot: int = Field(1000, ge=50, le=100_000, description="Bootstrap replicates for every interval.")
    min_group_size: int = Field(30, ge=1, description="Smaller groups are reported but left out of disparities.")
    min_class_size: int = Field(
        10, ge=1, description="Fewest positives (TPR, FNR), negatives (FPR) or predicted positives (precision)."
    )
    small_groups: Literal["inconclusive", "exclude"] = Field(
        "inconclusive",
        description="A gate on a slice whose comparison left out small groups is inconclusive, "
        "or (exclude) gates on the groups compared; either way the gate names the groups left out.",
    )
    counterfactual: dict[str, TextSwap] = Field(
        default_factory=dict, description="Named text edits, e.g. gender: {pairs: [[male, female]]}."
    )
    name_probes: dict[str, NameProbe] = Field(
        default_factory=dict, description="token-classification: named name probes, e.g. sex: {names: ..., ...}."
    )

    def slices(self, config: AuditConfigBase) -> list[list[str]]:
        features = self.features if self.features is not None else list(config.data.sensitive_features)
        return [[f] for f in features] + [list(i) for i in self.intersections]

    def rules(self) -> GroupRules:
        return GroupRules(self.min_group_size, self.min_class_size, self.method, self.confidence, self.n_boot)


def _with_reasons(estimates: dict[str, Estimate]) -> dict[str, Any]:
    """``{"tpr": 0.8, ..., "ci": {...}}``, and ``"<key>_reason"`` beside every null."""
    out: dict[str, Any] = {}
    cis: dict[str, list[float] | None] = {}
    for key, e in estimates.items():
        out[key] = e.value
        cis[key] = list(e.ci) if e.ci else None
        if e.reason:
            out[f"{key}_reason"] = e.reason
    out["ci"] = cis
    return out


class SwapResult(BaseModel):
    n: int
    flip_rate: float | None
    mean_abs_score_change: float | None
    mean_score_change: float | None
    ci: dict[str, list[float] | None]
    reason: str | None = None
    flip_rate_reason: str | None = None  # why flip_rate alone is null (a constant classifier)


class FairnessResult(AuditorResult):
    method: str
    confidence: float
    n_boot: int
    min_group_size: int
    min_class_size: int
    small_groups: str = "inconclusive"
    by_group: dict[str, dict[str, dict[str, Any]]]
    disparities: dict[str, dict[str, Any]]
    counterfactual: dict[str, SwapResult]
    worst_slices: dict[str, dict[str, Any]]  # disparity -> the slice where it is worst, and its value
    # Multiclass only: disparities above are one-vs-rest per class, under "<slice>|class=<name>";
    # these hold each group's accuracy (correct / n) over all classes and its difference per slice.
    classes: list[str] = []
    accuracy_by_group: dict[str, dict[str, dict[str, Any]]] = {}
    accuracy_disparities: dict[str, dict[str, Any]] = {}

    def summary(self) -> dict[str, Any]:
        """A binary run's summary keeps its shape: the multiclass-only keys appear only when used."""
        out = super().summary()
        if not self.classes:
            for key in ("classes", "accuracy_by_group", "accuracy_disparities"):
                out.pop(key)
        return out

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for disparities, by_group, metrics in (
            (self.disparities, self.by_group, tuple(DISPARITIES)),
            (self.accuracy_disparities, self.accuracy_by_group, ("accuracy_difference",)),  # multiclass
        ):
            for name, values in disparities.items():
                for metric in metrics:
                    out[f"{metric}[{name}]"] = self._value(metric, values, by_group[name])
        for name, swap in self.counterfactual.items():
            for metric, key in zip(COUNTERFACTUAL_METRICS, ("flip_rate", "mean_abs_score_change"), strict=True):
                ci = swap.ci.get(key)
                reason = swap.flip_rate_reason if key == "flip_rate" and swap.flip_rate_reason else swap.reason
                out[f"{metric}[{name}]"] = MetricValue(getattr(swap, key), tuple(ci) if ci else None, reason)
        return out

    def _value(self, metric: str, values: dict[str, Any], groups: dict[str, Any]) -> MetricValue:
        return disparity_value(metric, values, groups, self.small_groups, self.method, "fairness")


def disparity_value(
    metric: str, values: dict[str, Any], groups: dict[str, Any], small_groups: str, method: str, auditor: str
) -> MetricValue:
    """One disparity of a slice summary as a gateable value; groups left out as too small make it
    undecided under ``small_groups: inconclusive`` (mitigation gates read their slices the same way)."""
    ci = values["ci"].get(metric)
    reason = values.get(f"{metric}_reason")
    compared = set(values["groups_compared"][metric])
    left_out = tuple(g for g in groups if g not in compared)
    undecided = bool(left_out) and values[metric] is not None and small_groups == "inconclusive"
    if left_out and values[metric] is not None:
        reason = _left_out_reason(groups, metric, left_out, undecided, auditor) + (f"; {reason}" if reason else "")
    moves = left_out_moves(DISPARITIES[metric][1], method) if left_out else None
    return MetricValue(values[metric], tuple(ci) if ci else None, reason, left_out, undecided, moves)


def _left_out_reason(
    groups: dict[str, Any], metric: str, left_out: tuple[str, ...], undecided: bool, auditor: str
) -> str:
    needed = DISPARITIES[metric][0]
    why = []
    for group in left_out:
        insufficient = groups[group].get("insufficient", {})
        because = insufficient.get("all") or "; ".join(insufficient[r] for r in needed if r in insufficient)
        why.append(f"'{group}' ({because})" if because else f"'{group}'")
    text = f"compares {len(groups) - len(left_out)} of {len(groups)} groups; " + (
        f"left out as too small: {', '.join(why)}"
    )
    if undecided:
        text += f"; set auditors.{auditor}.small_groups: exclude to gate on the groups compared"
    return text


def left_out_moves(how: str, method: str) -> str | None:
    """Which way left-out groups could move a disparity between groups: a largest difference only up,
    a smallest ratio only down. Against the overall rate they could move it either way (the overall
    changes too): None."""
    if method != "between_groups":
        return None
    return "up" if how == "difference" else "down"


def slice_summary(report: SliceReport) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary.json shape of one slice: its groups and its disparities."""
    groups = {}
    for group, g in report.groups.items():
        entry = {
            "n": g.n,
            "n_positive": g.n_positive,
            "n_predicted_positive": g.n_predicted_positive,
            **_with_reasons(g.rates),
            "status": g.status,
        }
        if g.insufficient:
            entry["insufficient"] = dict(g.insufficient)
        groups[group] = entry
    disparities = {**_with_reasons(report.disparities), "groups_compared": report.compared}
    return groups, disparities


def worst_slices(disparities: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each disparity, the slice where it is worst: the lowest ratio or the largest difference."""
    out = {}
    for metric, (_, how) in DISPARITIES.items():
        values = {name: d[metric] for name, d in disparities.items() if d.get(metric) is not None}
        if values:
            pick = min if how == "ratio" else max
            name = pick(values, key=values.__getitem__)
            out[metric] = {"slice": name, "value": values[name], "ci": disparities[name]["ci"].get(metric)}
    return out


def check_slices(settings: FairnessSettings, known: set[str]) -> None:
    """Every feature and intersection names sensitive features, each once."""
    for key, features in (
        ("features", settings.features or []),
        *((f"intersections[{i}]", s) for i, s in enumerate(settings.intersections)),
    ):
        for feature in features:
            if feature not in known:
                raise AuditError(f"auditors.fairness.{key}: '{feature}' is not in data.sensitive_features")
        if len(set(features)) < len(features):
            twice = next(f for f in features if features.count(f) > 1)
            raise AuditError(f"auditors.fairness.{key}: '{twice}' is named twice")


class FairnessAuditor(Auditor[FairnessSettings]):
    """Group metrics across sensitive features and intersections, with intervals and swap tests."""

    name = "fairness"
    Settings = FairnessSettings
    reads_counts = True
    refuses: ClassVar[dict[str, str]] = {
        "name_probes": "name probes tag names in sentences, which needs data.task token-classification"
    }

    @classmethod
    def metric_ids(cls, settings: FairnessSettings, config: AuditConfigBase) -> set[str]:
        ids = {f"{cls.name}.{m}[{slice_name(s)}]" for s in settings.slices(config) for m in DISPARITIES}
        if config.data.task == "multiclass":
            ids = {f"{cls.name}.accuracy_difference[{slice_name(s)}]" for s in settings.slices(config)}
            ids |= {
                f"{cls.name}.{m}[{slice_name(s)}|class={c}]"
                for s in settings.slices(config)
                for c in config.data.classes or []
                for m in DISPARITIES
            }
        ids |= {f"{cls.name}.{m}[{swap}]" for swap in settings.counterfactual for m in COUNTERFACTUAL_METRICS}
        return ids

    @classmethod
    def check_config(cls, settings: FairnessSettings, config: AuditConfigBase) -> None:
        known = set(config.data.sensitive_features)
        if not known:
            raise AuditError("auditors.fairness: data.sensitive_features is empty; name at least one")
        check_slices(settings, known)
        if settings.counterfactual and config.data.text is None:
            raise AuditError("auditors.fairness.counterfactual: swaps edit text; the data section defines no text")

    def run(self, context: AuditContext) -> FairnessResult:
        s = self.settings
        p = context.predictions("test")
        rng = np.random.default_rng(context.seed)
        slices = s.slices(context.config)
        accuracy: dict[str, SliceReport] = {}
        bounds: dict[str, dict[str, float]] = {}
        if isinstance(p, CountedPredictions):  # streamed: the same statistics from counts, AUC binned
            reports, bounds = group_metrics_from_counts(p.counts, slices, s.rules(), rng)
        elif p.n_classes > 2:
            frame = context.data.test.frame
            reports, accuracy = group_metrics_by_class(
                p.y_true, p.y_pred, p.probabilities, p.classes, frame, slices, s.rules(), rng
            )
        else:
            frame = context.data.test.frame
            reports = group_metrics(p.y_true, p.y_pred, p.scores, frame, slices, s.rules(), rng)
        by_group, disparities = {}, {}
        for name, report in reports.items():
            by_group[name], disparities[name] = slice_summary(report)
        with_binning_errors(by_group, bounds)  # each binned AUC's largest error, beside it
        accuracy_by_group = {
            name: {
                group: {"n": g.n, **_with_reasons(g.rates), "status": g.status}
                | ({"insufficient": dict(g.insufficient)} if g.insufficient else {})
                for group, g in r.groups.items()
            }
            for name, r in accuracy.items()
        }
        accuracy_disparities = {
            name: {**_with_reasons(r.disparities), "groups_compared": r.compared} for name, r in accuracy.items()
        }
        counterfactual = {name: self._swap(context, swap, rng) for name, swap in s.counterfactual.items()}
        return FairnessResult(
            method=s.method,
            confidence=s.confidence,
            n_boot=s.n_boot,
            min_group_size=s.min_group_size,
            min_class_size=s.min_class_size,
            small_groups=s.small_groups,
            by_group=by_group,
            disparities=disparities,
            counterfactual=counterfactual,
            worst_slices=worst_slices(disparities),
            classes=list(p.classes) if p.n_classes > 2 else [],
            accuracy_by_group=accuracy_by_group,
            accuracy_disparities=accuracy_disparities,
        )

    def _swap(self, context: AuditContext, swap: TextSwap, rng: np.random.Generator) -> SwapResult:
        test, base = context.data.test, context.predictions_of(Predictions)
        edited = [swap.apply(t) for t in test.texts or []]
        changed = np.flatnonzero([a != b for a, b in zip(test.texts or [], edited, strict=True)])
        if len(changed) == 0:
            return SwapResult(
                n=0,
                flip_rate=None,
                mean_abs_score_change=None,
                mean_score_change=None,
                ci={},
                reason="the swap changed no test text",
            )
        subset = Split(test.name, test.frame.iloc[changed], test.y[changed], [edited[i] for i in changed], test.classes)
        edited_p = expect(Predictions, context.adapter.predict(subset, context.progress), "counterfactual")
        if base.n_classes > 2:  # multiclass: a flip changes the predicted class; the score is that class's
            before = base.y_pred[changed]
            flips = (edited_p.y_pred != before).astype(float)
            rows = np.arange(len(changed))
            shift = edited_p.probabilities[rows, before] - base.probabilities[changed, before]
        else:
            flips = (edited_p.y_pred != base.y_pred[changed]).astype(float)
            shift = edited_p.scores - base.scores[changed]
        stats = {"flip_rate": flips, "mean_abs_score_change": np.abs(shift), "mean_score_change": shift}
        replicates = bootstrap_means(np.column_stack(list(stats.values())), self.settings.n_boot, rng)
        ci = {key: _ci(replicates[:, k], self.settings.confidence) for k, key in enumerate(stats)}
        result = SwapResult(n=len(changed), ci=ci, **{key: float(v.mean()) for key, v in stats.items()})
        if len(np.unique(base.y_pred)) == 1:  # no label to flip away from: a flip rate of 0 is no evidence
            result.flip_rate, result.ci["flip_rate"] = None, None
            result.flip_rate_reason = "the model predicts one label for every test row: a constant classifier"
        return result


def _ci(replicates: np.ndarray, confidence: float) -> list[float] | None:
    interval, _ = percentile_interval(replicates, confidence)
    return list(interval) if interval else None
