"""``privacy`` for token classifiers: DP token heads at each epsilon on the public base encoder's word
features, entity F1 per run, the fairness auditor's name probes per run with the change from the
non-private reference (the fairness cost of privacy), and a sentence-level membership-inference
attack on every run and on the audited model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from auditkit.errors import AuditError
from auditkit.ner.fairness import block_value
from auditkit.ner.metrics import count_entities, entity_report
from auditkit.ner.privacy import HeadTask, head_outputs, word_data, word_features, word_labels
from auditkit.ner.privacy_fairness import DISPARITY_KEYS, ProbeRuns, degenerate_reason
from auditkit.ner.wordpieces import label_set
from auditkit.privacy.mia import balanced, loss_attack
from auditkit.privacy.selection import why_inconclusive
from auditkit.results import AuditorResult, MetricValue


class TokenPrivacyResult(AuditorResult):
    task: str = "token-classification"
    trained: str
    delta: float
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
            tag = f"eps={run['target_epsilon']:g}"
            ci = run["metrics"]["ci"].get("f1")
            f1 = run["metrics"]["entity_f1"]
            reason = None if f1 is not None else "no gold or predicted entities"
            out[f"entity_f1[{tag}]"] = MetricValue(f1, tuple(ci) if ci else None, reason)
            out[f"mia_auc[{tag}]"] = MetricValue(run["mia"]["auc"])
            for probe, report in run["name_probe"].items():
                for key in DISPARITY_KEYS:
                    out[f"{key}[{probe}@{tag}]"] = block_value(report["disparity"], key)
            for probe, change in run["name_recall_change"].items():
                for key in DISPARITY_KEYS:
                    out[f"{key}_change[{probe}@{tag}]"] = block_value(change, f"{key}_change")
        return out


def metric_ids(epsilons: list[float], probes: list[str]) -> set[str]:
    """Gate ids; a name probe's read as ``fairness.name_recall_ratio[<probe>]``, with ``@eps=<e>``."""
    ids = {"mia_auc[audited]", "epsilon_lower_bound[audited]"}
    for eps in epsilons:
        ids |= {f"entity_f1[eps={eps:g}]", f"mia_auc[eps={eps:g}]"}
        for probe in probes:
            ids |= {f"{key}{change}[{probe}@eps={eps:g}]" for key in DISPARITY_KEYS for change in ("", "_change")}
    return ids


def _attack(member: np.ndarray, nonmember: np.ndarray, delta: float, rng: np.random.Generator) -> dict[str, Any]:
    m, n = balanced(member, nonmember, rng)
    return loss_attack(m, n, delta).model_dump(mode="json", exclude={"roc"})


def token_privacy(context: Any, settings: Any) -> TokenPrivacyResult:
    from transformers import AutoModel, AutoTokenizer

    from auditkit.adapters.hf_text import SAFE, check_model_folder, resolve_base

    adapter, data, seed = context.adapter, context.data, context.seed
    base_spec = settings.base or getattr(getattr(context.config.model, "build", None), "base", None)
    if base_spec is None:
        raise AuditError("auditors.privacy.base: token DP runs need a public base encoder (or model.build.base)")
    base = Path(resolve_base(base_spec))
    check_model_folder(base, "auditors.privacy.base")
    encoder = AutoModel.from_pretrained(base, use_safetensors=True, **SAFE)
    tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True, **SAFE)  # the encoder's own word pieces
    features = {
        name: word_features(encoder, tokenizer, split.tokens, max_length=adapter.max_length, device=adapter.device)
        for name, split in (("train", data.train), ("test", data.test))
    }
    labels = label_set(data.train.tags)
    label2id = {t: i for i, t in enumerate(labels)}
    id2label = dict(enumerate(labels))
    y = {
        name: word_labels(tokenizer, split.tokens, split.tags, label2id, adapter.max_length)
        for name, split in (("train", data.train), ("test", data.test))
    }
    delta = settings.delta if settings.delta is not None else 1.0 / (10 * len(data.train))
    rng = np.random.default_rng(seed)
    train = word_data(features["train"], y["train"])
    hidden = features["train"][0].shape[1]
    config_path = context.config.config_path
    probes = ProbeRuns(  # the fairness auditor's probes, read from its validated settings
        getattr(context.config.auditors, "fairness", None),
        Path(config_path).parent if config_path is not None else None,
        lambda s: word_features(encoder, tokenizer, s, max_length=adapter.max_length, device=adapter.device),
        seed,
    )
    hits: dict[float | None, dict[str, np.ndarray]] = {}

    on_gpu = adapter.device.type == "cuda"
    task = HeadTask(
        train,
        hidden,
        len(labels),
        {
            "delta": delta,
            "epochs": settings.epochs,
            "learning_rate": settings.learning_rate,
            "batch_size": settings.batch_size,
            "max_grad_norm": settings.max_grad_norm,
            "accountant": settings.accountant,
            "seed": seed,
        },
        "auto" if on_gpu else "cpu",
        context.progress,
    )
    targets = [*settings.epsilons, None]  # every run and the reference at once (Ray tasks on a cluster)
    trained = dict(zip(targets, context.executor.map(task, targets, gpu=on_gpu), strict=True))

    def run(target: float | None) -> dict[str, Any]:
        outcome = trained[target]
        outcome.head.to(adapter.device)  # trained where the executor put it
        test_tags, test_loss = head_outputs(outcome.head, features["test"], y["test"], id2label, adapter.device)
        _, train_loss = head_outputs(outcome.head, features["train"], y["train"], id2label, adapter.device)
        report = entity_report(count_entities(data.test.tags, test_tags), settings.n_boot, 0.95, seed)
        degenerate = degenerate_reason(test_tags, report)
        name_probe, hits[target] = probes.measure(
            lambda f: head_outputs(outcome.head, f, None, id2label, adapter.device)[0], degenerate
        )
        return {
            "target_epsilon": target,
            "epsilon": outcome.epsilon,
            "delta": delta,
            "noise_multiplier": outcome.noise_multiplier,
            "sample_rate": outcome.sample_rate,
            "steps": outcome.steps,
            "max_grad_norm": settings.max_grad_norm if target is not None else None,
            "accountant": settings.accountant if target is not None else None,
            "epochs": settings.epochs,
            "seconds": round(outcome.seconds, 2),
            "by_group": {name: r["by_group"] for name, r in name_probe.items()},  # name-probe recall per group
            "name_probe": name_probe,
            "name_recall_change": {},
            "degenerate": degenerate,
            "flags": [f"degenerate: {degenerate}; no conclusion is drawn from this run"] if degenerate else [],
            "metrics": {
                "entity_f1": report["metrics"]["f1"],
                "token_accuracy": report["metrics"]["token_accuracy"],
                "accuracy": report["metrics"]["token_accuracy"],
                "ci": {"f1": report["ci"]["f1"]},
            },
            "mia": _attack(train_loss, test_loss, delta, rng),
        }

    runs = [run(eps) for eps in settings.epsilons]
    reference = run(None)
    for result in runs:
        why = why_inconclusive(result["degenerate"], reference["degenerate"])
        result["name_recall_change"] = probes.changes(hits[result["target_epsilon"]], hits[None], why)
    audited = _attack(
        adapter.sentence_losses(data.train.tokens, data.train.tags),
        adapter.sentence_losses(data.test.tokens, data.test.tags),
        delta,
        rng,
    )
    return TokenPrivacyResult(
        trained=f"a token-classification head on the frozen public encoder {base_spec} (per-sentence DP-SGD)",
        delta=delta,
        runs=runs,
        non_private=reference,
        audited_model={"mia": audited},
    )
