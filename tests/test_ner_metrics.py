"""Entity metrics equal seqeval's own functions (strict IOB2); intervals and the type confusion table."""

from __future__ import annotations

import random

import numpy as np
import pytest
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from auditkit.ner.metrics import BOUNDARY, MISSED, SPURIOUS, count_entities, entity_report, type_confusion

TYPES = ["PER", "LOC", "ORG"]


def random_tags(rng: random.Random, n: int, noise: float) -> tuple[list[list[str]], list[list[str]]]:
    """Gold IOB2 sentences and noisy predictions, invalid I- tags included (strict mode drops them)."""
    gold, pred = [], []
    for _ in range(n):
        length = rng.randint(1, 12)
        tags, i = [], 0
        while i < length:
            if rng.random() < 0.3:
                kind, span = rng.choice(TYPES), rng.randint(1, 3)
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (span - 1)
                i += span
            else:
                tags.append("O")
                i += 1
        tags = tags[:length]
        noisy = [
            rng.choice(["O", *(f"{p}-{k}" for p in "BI" for k in TYPES)]) if rng.random() < noise else t for t in tags
        ]
        gold.append(tags)
        pred.append(noisy)
    return gold, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("noise", [0.0, 0.15, 0.6])
def test_equal_to_seqeval_strict(seed, noise):
    gold, pred = random_tags(random.Random(seed), 150, noise)
    report = entity_report(count_entities(gold, pred), n_boot=100, confidence=0.95, seed=0)
    m = report["metrics"]
    strict = {"mode": "strict", "scheme": IOB2}
    assert m["precision"] == pytest.approx(precision_score(gold, pred, **strict), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(gold, pred, **strict), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(gold, pred, **strict), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro", **strict), abs=1e-12)
    assert m["token_accuracy"] == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
    theirs = classification_report(gold, pred, output_dict=True, zero_division=0, **strict)
    for kind, row in report["by_type"].items():
        assert row["support"] == theirs[kind]["support"]
        assert row["f1"] == pytest.approx(theirs[kind]["f1-score"], abs=1e-12)
        for name, key in (("precision", "precision"), ("recall", "recall")):
            if row[name] is not None:
                assert row[name] == pytest.approx(theirs[kind][key], abs=1e-12)


def test_intervals_hold_the_estimate_and_are_null_when_undefined():
    gold, pred = random_tags(random.Random(5), 300, 0.2)
    report = entity_report(count_entities(gold, pred), n_boot=500, confidence=0.95, seed=3)
    low, high = report["ci"]["f1"]
    assert low < report["metrics"]["f1"] < high
    nothing = entity_report(count_entities([["O", "O"]], [["O", "O"]]), n_boot=50, confidence=0.95, seed=0)
    assert nothing["metrics"]["f1"] is None and nothing["metrics"]["f1_reason"]
    assert nothing["ci"]["f1"] is None
    assert nothing["metrics"]["token_accuracy"] == 1.0


def test_type_missing_from_predictions_has_null_precision_and_zero_f1():
    gold = [["B-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O"]]
    row = entity_report(count_entities(gold, pred), n_boot=50, confidence=0.95, seed=0)["by_type"]["LOC"]
    assert row["precision"] is None and row["precision_reason"] == "no predicted entities"
    assert row["recall"] == 0.0 and row["f1"] == 0.0


def test_bootstrap_resamples_sentences():
    """Counts are per sentence: an interval from one long sentence cannot be narrower than the data allow."""
    gold = [["B-PER"] + ["O"] * 9] * 40
    pred = [["B-PER"] + ["O"] * 9] * 20 + [["O"] * 10] * 20
    report = entity_report(count_entities(gold, pred), n_boot=2000, confidence=0.95, seed=0)
    low, high = report["ci"]["recall"]
    se = np.sqrt(0.25 / 40)
    assert low == pytest.approx(0.5 - 1.96 * se, abs=0.04) and high == pytest.approx(0.5 + 1.96 * se, abs=0.04)


def test_type_confusion_table():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "O", "O"]]
    pred = [["B-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "O", "O", "B-PER"]]
    table = type_confusion(gold, pred)
    assert table["PER"] == {"ORG": 1}
    assert table["LOC"] == {BOUNDARY: 1}
    assert table["ORG"] == {MISSED: 1}
    assert table[SPURIOUS] == {"PER": 1}
