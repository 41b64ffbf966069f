"""``performance`` for token classifiers: strict entity metrics per type, micro and macro, token accuracy,
sentence-bootstrap intervals and the confusion table of entity types."""

from __future__ import annotations

from typing import Any

from auditkit.ner.metrics import count_entities, entity_report, type_confusion
from auditkit.ner.predictions import TokenPredictions
from auditkit.results import AuditorResult, MetricValue

HEADLINE = ("precision", "recall", "f1", "macro_f1", "token_accuracy")
PER_TYPE = ("precision", "recall", "f1")


class TokenPerformanceResult(AuditorResult):
    task: str = "token-classification"
    metrics: dict[str, Any]
    ci: dict[str, list[float] | None]
    by_type: dict[str, dict[str, Any]]
    type_confusion: dict[str, dict[str, int]]

    def metric_values(self) -> dict[str, MetricValue]:
        out = {}
        for name in HEADLINE:
            value, ci = self.metrics.get(name), self.ci.get(name)
            key = "entity_" + name if name in PER_TYPE else name
            out[key] = MetricValue(value, tuple(ci) if ci else None, self.metrics.get(f"{name}_reason"))
        for kind, row in self.by_type.items():
            for name in PER_TYPE:
                ci = row["ci"].get(name)
                out[f"entity_{name}[type={kind}]"] = MetricValue(
                    row.get(name), tuple(ci) if ci else None, row.get(f"{name}_reason")
                )
        return out


def metric_ids(entity_types: list[str] | None) -> set[str]:
    """Gate ids the token performance engine can produce; per-type ids for the data's types."""
    ids = {("entity_" + n if n in PER_TYPE else n) for n in HEADLINE}
    for kind in entity_types or []:
        ids |= {f"entity_{n}[type={kind}]" for n in PER_TYPE}
    return ids


def token_performance(p: TokenPredictions, *, n_boot: int, confidence: float, seed: int) -> TokenPerformanceResult:
    report = entity_report(count_entities(p.y_true, p.y_pred), n_boot, confidence, seed)
    m = report["metrics"]
    m["n_truncated"] = p.n_truncated
    # Words with no word piece (cut by max_length, or text the tokenizer drops: a lone no-break space,
    # a control character) are tagged O unscored; say how many, and how many of them gold calls an entity.
    unscored = [(s, i) for s, row in enumerate(p.scores) for i, score in enumerate(row) if score is None]
    m["n_unscored_words"] = len(unscored)
    m["n_unscored_entity_words"] = sum(p.y_true[s][i] != "O" for s, i in unscored)
    # The contract's minimum keys: n (sentences), accuracy (per word, as seqeval's accuracy_score), roc_auc.
    m["n"], m["accuracy"] = m["n_sentences"], m["token_accuracy"]
    m["roc_auc"], m["roc_auc_reason"] = None, "not defined for token classification (many tags per sentence)"
    return TokenPerformanceResult(
        metrics=report["metrics"],
        ci=report["ci"],
        by_type=report["by_type"],
        type_confusion=type_confusion(p.y_true, p.y_pred),
    )
