"""Which words a token-classification explain run attributes, and which tag at each (torch-free).

By default the words the model tags as an entity ("predicted") and the gold entity words it tagged O
("missed"); words that are O in both ("outside") only on request. The target is the tag the model
chose at the word, or the gold tag.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auditkit.errors import AuditError
from auditkit.ner.predictions import TokenPredictions
from auditkit.ner.tags import OUTSIDE, split_tag

TARGETS = ("predicted", "gold")  # the explain auditor's ``target`` values for token classification


@dataclass(frozen=True)
class Word:
    sentence: int  # position in the test split
    position: int  # word in the sentence
    why: str  # "predicted", "missed" or "outside"
    kind: str  # the word's entity type (predicted, else gold; "O" outside): spreads the sample
    gold: str  # IOB2
    predicted: str  # IOB2
    tag: int | None  # model tag id explained; None: the model's own top tag at the word


@dataclass(frozen=True)
class Choice:
    words: list[Word]
    left_out: dict[str, int]  # candidate words that could not be explained, by reason


def entity_type(tag: str) -> str:
    """``B-person`` -> ``person``; ``O`` (or a tag outside the IOB2 grammar) -> ``O``."""
    try:
        kind = split_tag(tag)[1]
    except ValueError:
        return OUTSIDE
    return kind or OUTSIDE


def choose_words(
    p: TokenPredictions,
    *,
    n: int,
    ids: Sequence[str],
    target: str,
    include_outside: bool,
    label2id: dict[str, int],
    rng: np.random.Generator,
) -> Choice:
    """Up to ``n`` candidate words, spread over entity types round robin in a seeded order, plus every
    candidate word of the sentences named in ``ids``; in sentence and word order."""
    if target not in TARGETS:
        raise AuditError(f"auditors.explain.target: '{target}' is not one of {', '.join(TARGETS)}")
    candidates: list[Word] = []
    left_out: dict[str, int] = defaultdict(int)
    for s in range(len(p)):
        for w in range(len(p.tokens[s])):
            word = _candidate(p, s, w, target, include_outside, label2id, left_out)
            if word is not None:
                candidates.append(word)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for k, word in enumerate(candidates):
        by_kind[word.kind].append(k)
    pools = {kind: [members[i] for i in rng.permutation(len(members))] for kind, members in by_kind.items()}
    chosen: set[int] = set()
    while len(chosen) < n and any(pools.values()):
        for kind in sorted(pools):  # round robin over types, so rare types are explained too
            if pools[kind] and len(chosen) < n:
                chosen.add(pools[kind].pop())
    position = {str(sentence_id): s for s, sentence_id in enumerate(p.ids)}
    for sentence_id in ids:
        if sentence_id not in position:
            raise AuditError(f"auditors.explain.ids: '{sentence_id}' is not in the test split")
        chosen |= {k for k, word in enumerate(candidates) if word.sentence == position[sentence_id]}
    return Choice([candidates[k] for k in sorted(chosen)], dict(left_out))


def _candidate(
    p: TokenPredictions,
    s: int,
    w: int,
    target: str,
    include_outside: bool,
    label2id: dict[str, int],
    left_out: dict[str, int],
) -> Word | None:
    predicted, gold = p.y_pred[s][w], p.y_true[s][w]
    why = "predicted" if predicted != OUTSIDE else "missed" if gold != OUTSIDE else "outside"
    if why == "outside" and not include_outside:
        return None
    if p.scores[s][w] is None:  # no word piece: cut by max_length
        left_out["cut_by_max_length"] += 1
        return None
    tag = None
    if target == "gold":
        tag = model_tag(p.y_true[s], w, label2id)
        if tag is None:
            left_out["gold_tag_not_in_model"] += 1
            return None
    kind = entity_type(predicted if why == "predicted" else gold)
    return Word(s, w, why, kind, gold, predicted, tag)


def model_tag(tags: Sequence[str], w: int, label2id: dict[str, int]) -> int | None:
    """The model's id for IOB2 ``tags[w]``, in the model's own scheme (IOB2, else BIOES); None when it has none."""
    tag = tags[w]
    if tag in label2id:
        return label2id[tag]
    if tag == OUTSIDE:
        return None
    prefix, kind = split_tag(tag)
    last = w + 1 >= len(tags) or tags[w + 1] != f"I-{kind}"  # the entity ends at this word
    bioes = {"B": "S" if last else "B", "I": "E" if last else "I"}[prefix]
    return label2id.get(f"{bioes}-{kind}")
