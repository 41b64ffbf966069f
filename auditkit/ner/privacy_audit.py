"""``privacy`` for token classifiers: DP runs of the base model with a fresh token-classification head
(probe, top layers or LoRA) through the same Opacus loop, grid choice and attacks as the classification
path (:class:`~auditkit.privacy.sweep.Sweep`), with a sentence as the example. Per run: the accounting,
entity F1, the fairness auditor's name probes with the change from the non-private reference (the
fairness cost of privacy), and sentence-level membership inference (loss threshold and LiRA); and the
loss attack on the audited model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset

from auditkit.adapters.capabilities import TokenRetrainable
from auditkit.auditors.privacy import request
from auditkit.errors import AuditError
from auditkit.ner.fairness import block_value
from auditkit.ner.metrics import count_entities, entity_report
from auditkit.ner.privacy import run_tags
from auditkit.ner.privacy_fairness import DISPARITY_KEYS, ProbeRuns, degenerate_reason
from auditkit.ner.tags import OUTSIDE
from auditkit.ner.wordpieces import label_set
from auditkit.privacy.mia import AttackResult, balanced, loss_attack
from auditkit.privacy.plan import RunSpec
from auditkit.privacy.selection import subset, validation_split, why_inconclusive
from auditkit.privacy.sweep import Shadowed, Sweep, Trained, bound_flags
from auditkit.results import AuditorResult, MetricValue
from auditkit.training import TrainingData

VALIDATION = "micro entity F1 on the validation carve-out"


class TokenPrivacyResult(AuditorResult):
    task: str = "token-classification"
    trained: str
    run_kind: str = "top_layers"
    validation: str = VALIDATION  # what each run's learning rate and epochs were chosen by
    delta: float
    n_fit: int = 0
    n_validation: int = 0
    runs: list[dict[str, Any]]
    non_private: dict[str, Any]
    audited_model: dict[str, Any]

    def metric_values(self) -> dict[str, MetricValue]:
        mia = self.audited_model["mia"]
        out = {
            "mia_auc[audited]": MetricValue(mia["auc"]),
            "epsilon_lower_bound[audited]": MetricValue(mia["epsilon_lower_bound"]),
        }
        for run in self.runs:
            tag = run["tag"]
            ci = run["metrics"]["ci"].get("f1")
            f1 = run["metrics"]["entity_f1"]
            reason = None if f1 is not None else "no gold or predicted entities"
            out[f"entity_f1[{tag}]"] = MetricValue(f1, tuple(ci) if ci else None, reason)
            attack = run["mia"]
            out[f"mia_auc[{tag}]"] = (
                MetricValue(attack["auc"]) if attack else MetricValue(None, reason=run["attack_reason"])
            )
            for probe, report in run["name_probe"].items():
                for key in DISPARITY_KEYS:
                    out[f"{key}[{probe}@{tag}]"] = block_value(report["disparity"], key)
            for probe, change in run["name_recall_change"].items():
                for key in DISPARITY_KEYS:
                    out[f"{key}_change[{probe}@{tag}]"] = block_value(change, f"{key}_change")
        return out


def metric_ids(settings: Any, probes: list[str]) -> set[str]:
    """Gate ids per run of ``settings.runs()`` (``eps=8``, sweeps ``eps=8,clip=0.5``); a name probe's read as
    ``fairness.name_recall_ratio[<probe>]``, with ``@<run>``."""
    ids = {"mia_auc[audited]", "epsilon_lower_bound[audited]"}
    for spec in settings.runs():
        ids |= {f"entity_f1[{spec.tag}]", f"mia_auc[{spec.tag}]"}
        for probe in probes:
            ids |= {f"{key}{change}[{probe}@{spec.tag}]" for key in DISPARITY_KEYS for change in ("", "_change")}
    return ids


def token_privacy(context: Any, settings: Any) -> TokenPrivacyResult:
    adapter, data, seed = context.adapter, context.data, context.seed
    if not isinstance(adapter, TokenRetrainable):  # validate refuses this; a Python caller may still get here
        raise AuditError(f"auditors.privacy: adapter {type(adapter).__name__} cannot be retrained")
    labels = label_set(data.train.tags)
    whole = adapter.trainable(data, replace(request(settings, seed), labels=tuple(labels)), context.progress)
    # The carve-out keeps the share of sentences with an entity: its entity F1 is what chooses a run.
    has_entity = np.array([any(t != OUTSIDE for t in tags) for tags in data.train.tags], dtype=np.int64)
    fit_rows, val_rows = validation_split(has_entity, settings.validation_share, seed)
    # ``encode`` holds the frozen encoder: it stays in this process, tasks carry only what they train.
    trainable = replace(whole, train=subset(whole.train, fit_rows), encode=None)
    delta = settings.delta if settings.delta is not None else 1.0 / (10 * len(fit_rows))
    rng = np.random.default_rng(seed)
    members, nonmembers = balanced(np.arange(len(fit_rows)), np.arange(len(data.test)), rng)
    population = TrainingData(ConcatDataset([trainable.train.dataset, whole.test.dataset]), whole.train.collate)
    config_path = context.config.config_path
    probes = ProbeRuns(  # the fairness auditor's probes, read from its validated settings
        getattr(context.config.auditors, "fairness", None),
        Path(config_path).parent if config_path is not None else None,
        seed,
    )
    extra = whole.encode(probes.sentences) if probes.sentences and whole.encode is not None else None
    sweep = Sweep(settings, context, trainable, subset(whole.train, val_rows), population, members, nonmembers, extra)
    rates, epochs = settings.grid()
    reference_spec = RunSpec(None, settings.max_grad_norm, tuple(rates), (max(epochs),), "non-private")
    specs = [reference_spec, *settings.runs()]
    # Every run of every grid trains as an executor task, then every LiRA shadow (a cluster runs them at once).
    done, hits, attacks = [], [], []
    for spec, trained in zip(specs, sweep.train(specs, delta), strict=True):
        run, run_hits = _evaluate(spec, trained, sweep, probes, labels, settings, context, delta)
        done.append(run)
        hits.append(run_hits)
        if run["mia"] is not None and (masks := sweep.shadow_masks(rng)) is not None:
            settings_ = sweep.settings(spec, trained.learning_rate, trained.outcome.epochs, delta)
            attacks.append((run, Shadowed(spec, trained.outcome, settings_, masks)))
    for (run, shadowed), lira in zip(attacks, sweep.attack([a for _, a in attacks], delta), strict=True):
        run["lira"] = _dump(lira)
        run["flags"] += bound_flags(shadowed.outcome, lira)
    reference, *runs = done
    for run, run_hits in zip(runs, hits[1:], strict=True):
        why = why_inconclusive(run["degenerate"], reference["degenerate"])
        run["name_recall_change"] = probes.changes(run_hits, hits[0], why)
    # The audited model trained on every training sentence: its members are the sampled fit sentences.
    member_rows = fit_rows[members]
    audited = loss_attack(
        adapter.sentence_losses([data.train.tokens[i] for i in member_rows], [data.train.tags[i] for i in member_rows]),
        adapter.sentence_losses([data.test.tokens[i] for i in nonmembers], [data.test.tags[i] for i in nonmembers]),
        delta,
    )
    return TokenPrivacyResult(
        trained=f"{whole.description} (per-sentence DP-SGD)",
        run_kind=settings.run_kind,
        delta=delta,
        n_fit=len(fit_rows),
        n_validation=len(val_rows),
        runs=runs,
        non_private=reference,
        audited_model={"mia": _dump(audited)},
    )


def _evaluate(
    spec: RunSpec,
    trained: Trained,
    sweep: Sweep,
    probes: ProbeRuns,
    labels: list[str],
    settings: Any,
    context: Any,
    delta: float,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One run's result but LiRA and the change from the reference, and its name-probe hits."""
    data, seed, outcome = context.data, context.seed, trained.outcome
    test_tags = run_tags(outcome.test, labels, [len(s) for s in data.test.tokens])
    report = entity_report(count_entities(data.test.tags, test_tags), settings.n_boot, 0.95, seed)
    degenerate = degenerate_reason(test_tags, report)
    probe_tags = (
        run_tags(outcome.extra, labels, [len(s) for s in probes.sentences]) if outcome.extra is not None else []
    )
    name_probe, hits = probes.measure(probe_tags, degenerate)
    # One tag for every word has no decision to attack (as a constant classifier); a run that tags
    # entities at chance level can still memorise: it is attacked.
    tagged = {t for sentence in test_tags for t in sentence}
    constant = f"the run predicts tag {next(iter(tagged))} for every test word" if len(tagged) == 1 else None
    mia = None if constant else sweep.loss_attack(outcome, delta)
    private = spec.epsilon is not None
    flags = [f"degenerate: {degenerate}; no conclusion is drawn from this run"] if degenerate else []
    return {
        "tag": spec.tag if private else None,
        "target_epsilon": spec.epsilon,
        "epsilon": outcome.epsilon,
        "epsilons": outcome.epsilons,  # the same run under both of Opacus' accountants
        "delta": delta,
        "noise_multiplier": outcome.noise_multiplier,
        "sample_rate": outcome.sample_rate,
        "steps": outcome.steps,
        "max_grad_norm": spec.max_grad_norm if private else None,
        "clipped_share": outcome.clipped_share,
        "accountant": settings.accountant if private else None,
        "learning_rate": trained.learning_rate,
        "epochs": outcome.epochs,
        "validation_score": trained.validation_score,
        "seconds": round(outcome.seconds, 2),
        "by_group": {name: r["by_group"] for name, r in name_probe.items()},  # name-probe recall per group
        "name_probe": name_probe,
        "name_recall_change": {},
        "degenerate": degenerate,
        "flags": flags + bound_flags(outcome, mia),
        "metrics": {
            "entity_f1": report["metrics"]["f1"],
            "token_accuracy": report["metrics"]["token_accuracy"],
            "accuracy": report["metrics"]["token_accuracy"],
            "ci": {"f1": report["ci"]["f1"]},
        },
        "mia": _dump(mia),
        "lira": None,
        "attack_reason": f"the run is degenerate: {constant}" if constant else None,
    }, hits


def _dump(attack: AttackResult | None) -> dict[str, Any] | None:
    return attack.model_dump(mode="json", exclude={"roc"}) if attack is not None else None
