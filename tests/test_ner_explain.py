"""Token explanations: the registered token IG engine (completeness, Captum, the explained word never erased),
which words get explained, per-type views, protected words, Ray equal to in process, and the HTML section."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from auditkit.adapters.hf_token import HfTokenAdapter, HfTokenBuild, HfTokenConfig
from auditkit.auditors.base import AuditContext
from auditkit.auditors.explain import ExplainSettings
from auditkit.config import DataConfig
from auditkit.data import load_data
from auditkit.errors import AuditError
from auditkit.execution.base import InProcessExecutor
from auditkit.explain.engines import EngineOptions, engine_for
from auditkit.explain.token_ig import TokenIG
from auditkit.explain.views import ProtectedTerms
from auditkit.ner.explain_audit import TokenExplainResult, token_explain
from auditkit.ner.model import fine_tune
from auditkit.progress import SILENT
from tests.ner_support import GROUP_A, GROUP_B, make_sentences, make_tiny_token_bert, vocabulary_texts, write_jsonl

LABELS = ["O", "B-location", "I-location", "B-person", "I-person"]
QUICK = {"n_examples": 12, "n_boot": 100, "min_count": 2, "faithfulness_percents": [10, 50]}


class TokenSettings(ExplainSettings):
    """The settings with the token-only option the explain auditor is to add."""

    include_outside: bool = False


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny token classifier trained where group-B names are tagged O, audited on data where they are
    people: it tags some entities and misses others."""
    folder = tmp_path_factory.mktemp("ner_explain")
    base = make_tiny_token_bert(folder / "base", vocabulary_texts(), LABELS)
    rows = make_sentences(240, seed=0, relabel=set(GROUP_B))
    settings = HfTokenBuild(
        batch_size=16, learning_rate=3e-3, weight_decay=0.0, warmup_ratio=0.1, epochs=6,
        head_epochs=0, head_learning_rate=None, group_by_length=False,
    )  # fmt: skip
    tokens, tags = [r["tokens"] for r in rows], [r["tags"] for r in rows]
    cpu = torch.device("cpu")
    fine_tune(
        base, tokens, tags, folder / "model", settings=settings, max_length=64, device=cpu, seed=0, progress=SILENT
    )
    write_jsonl(folder / "data.jsonl", make_sentences(160, seed=3))
    return folder


@pytest.fixture(scope="module")
def loaded(workspace):
    """Config, data and adapter built directly (the run's config loader also loads every auditor plugin)."""
    data = DataConfig(
        task="token-classification",
        path=workspace / "data.jsonl",
        id_column="sid",
        sensitive_features=["origin"],
        split={"test_size": 0.3},
    )
    model = HfTokenConfig(adapter="hf-token", path=workspace / "model", max_length=64, batch_size=32, device="cpu")
    config = SimpleNamespace(seed=0, data=data, model=model)
    return config, load_data(data, 0), HfTokenAdapter.load(model, data)


def context_of(loaded, executor=None) -> AuditContext:
    config, data, adapter = loaded
    return AuditContext(config, data, adapter, SILENT, executor or InProcessExecutor())


@pytest.fixture(scope="module")
def default_run(loaded) -> tuple[AuditContext, TokenExplainResult]:
    context = context_of(loaded)
    return context, token_explain(context, TokenSettings(**QUICK))


def test_the_token_engine_is_registered_for_the_token_capability():
    assert engine_for(HfTokenAdapter) is TokenIG


def test_default_words_carry_a_predicted_or_gold_entity_tag(default_run):
    context, result = default_run
    records = result.records
    assert len(records) == result.n_examples == 12
    assert {r["why"] for r in records} == {"predicted", "missed"}  # the biased model misses group-B names
    p = context.predictions("test")
    sentence = {str(i): s for s, i in enumerate(p.ids)}
    for r in records:
        gold, predicted = p.y_true[sentence[r["id"]]][r["position"]], p.y_pred[sentence[r["id"]]][r["position"]]
        assert (r["gold"], r["predicted"]) == (gold, predicted)
        assert predicted != "O" or gold != "O"
        assert r["why"] == ("predicted" if predicted != "O" else "missed")
        assert r["tag"] == r["target"] == predicted  # target "predicted": the tag the model chose (O when missed)
    assert sum(result.explained.values()) == 12 and result.explained["outside"] == 0


def test_outside_words_only_on_request(loaded, default_run):
    _, default = default_run
    assert all(r["why"] != "outside" and (r["gold"], r["predicted"]) != ("O", "O") for r in default.records)
    with_outside = token_explain(context_of(loaded), TokenSettings(**QUICK | {"n_examples": 30}, include_outside=True))
    outside = [r for r in with_outside.records if r["why"] == "outside"]
    assert outside and all(r["gold"] == r["predicted"] == r["tag"] == "O" for r in outside)
    assert "O" in with_outside.context_words_by_type


def test_round_robin_spreads_words_over_types(default_run):
    _, result = default_run
    kinds = [
        r["gold"].split("-")[-1] if r["why"] == "missed" else r["predicted"].split("-")[-1] for r in result.records
    ]
    assert set(kinds) == {"person", "location"}
    assert abs(kinds.count("person") - kinds.count("location")) <= 1


def test_ids_add_every_candidate_word_and_unknown_ids_are_refused(loaded, default_run):
    context, result = default_run
    p = context.predictions("test")
    extra = next(str(i) for i in p.ids if str(i) not in {r["id"] for r in result.records})
    s = [str(i) for i in p.ids].index(extra)
    wanted = [w for w in range(len(p.tokens[s])) if p.y_pred[s][w] != "O" or p.y_true[s][w] != "O"]
    more = token_explain(context_of(loaded), TokenSettings(**QUICK, ids=[extra]))
    assert sorted(r["position"] for r in more.records if r["id"] == extra) == wanted
    with pytest.raises(AuditError, match="auditors.explain.ids: 'nowhere' is not in the test split"):
        token_explain(context_of(loaded), TokenSettings(**QUICK, ids=["nowhere"]))


def test_target_gold_attributes_the_gold_tag(loaded):
    result = token_explain(context_of(loaded), TokenSettings(**QUICK, target="gold"))
    assert all(r["tag"] == r["gold"] for r in result.records)
    assert any(r["why"] == "missed" and r["tag"] != "O" for r in result.records)
    with pytest.raises(AuditError, match="auditors.explain.target: 'positive' is not one of predicted, gold"):
        token_explain(context_of(loaded), TokenSettings(**QUICK, target="positive"))


def test_completeness_within_tolerance_for_95_percent_of_words(loaded):
    result = token_explain(context_of(loaded), TokenSettings(**QUICK | {"n_examples": 40}))
    within = [
        abs(sum(t["score"] for t in r["tokens"]) - (r["f_input"] - r["f_baseline"]))
        <= 0.01 * abs(r["f_input"] - r["f_baseline"]) + 1e-6
        for r in result.records
    ]
    assert len(within) == 40 and np.mean(within) >= 0.95
    assert result.relative_delta["share_above_tolerance"] <= 0.05
    assert min(r["steps"] for r in result.records) == 16  # adaptive: easy words stop early


def test_probability_output_and_schedule_are_honoured(loaded):
    settings = TokenSettings(**QUICK, output="probability", start_steps=24, max_steps=48, tolerance=0.05)
    result = token_explain(context_of(loaded), settings)
    assert {r["steps"] for r in result.records} <= {24, 32, 48}
    assert all(0.0 <= r["f_input"] <= 1.0 for r in result.records)
    assert set(result.steps["histogram"]) == {"24", "32", "48"}


def test_equal_to_captum_on_a_position_selecting_forward(loaded):
    from captum.attr import LayerIntegratedGradients

    _, _, adapter = loaded
    engine = TokenIG.create(adapter, None, EngineOptions(baseline_token="mask"))
    words = ["Kwame", "flew", "to", "Accra", "last", "week", "."]
    (a,) = engine.attribute_words(["x"], [words], [(3, None)], None, 1e-9, SILENT, [32])
    pieces = adapter.encode_sentences([words])
    ids = torch.tensor(pieces.input_ids)
    where = pieces.first_piece[0][3]
    special = adapter.special_tokens_mask(pieces.input_ids[0])
    base = torch.tensor([[t if s else adapter.token_id("mask") for t, s in zip(ids[0].tolist(), special, strict=True)]])
    model = adapter.attribution_module()

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids, torch.ones_like(input_ids))[:, where]

    tag = int(model(ids, torch.ones_like(ids))[0, where].argmax())
    reference = LayerIntegratedGradients(forward, adapter.embedding_layer()).attribute(
        ids, baselines=base, target=tag, n_steps=32, method="riemann_middle"
    )
    per_piece = reference.sum(-1)[0].detach().double().numpy()
    expected = [per_piece[[p for p, w in enumerate(pieces.word_ids[0]) if w == k]].sum() for k in range(len(words))]
    assert a.target == (3, tag) and a.steps == 32
    np.testing.assert_allclose(a.scores, expected, rtol=1e-4, atol=1e-6)


def test_the_explained_word_is_never_erased(loaded):
    _, _, adapter = loaded
    engine = TokenIG.create(adapter, None, EngineOptions())
    words = ["yesterday", "Kwame", "called", "me", "from", "Accra", "."]
    (a,) = engine.attribute_words(["x"], [words], [(1, None)], None, 1.0, SILENT, [16])
    ids, where = engine.perturb(a, np.ones(len(words), dtype=bool))
    assert where == a.inputs[1]
    for k, positions in enumerate(a.unit_positions):
        for position in positions:
            expected = a.inputs[0][position] if k == 1 else engine.baseline_id
            assert ids[position] == expected


def test_context_words_per_type_respect_min_count_top_k_and_carry_intervals(loaded):
    settings = TokenSettings(**QUICK | {"n_examples": 30, "min_count": 3}, top_k=4)
    result = token_explain(context_of(loaded), settings)
    assert set(result.context_words_by_type) >= {"person", "location"}
    for sides in result.context_words_by_type.values():
        assert len(sides["toward"]) <= 4 and len(sides["away"]) <= 4
        for side, sign in (("toward", 1), ("away", -1)):
            for row in sides[side]:
                assert row["count"] >= 3 and sign * row["mean_attribution"] > 0
                assert row["ci"][0] <= row["mean_attribution"] <= row["ci"][1]
            means = [row["mean_attribution"] for row in sides[side]]
            assert means == sorted(means, reverse=sign > 0)


def test_context_words_never_include_the_explained_word(loaded):
    settings = TokenSettings(**QUICK | {"n_examples": 30, "min_count": 1}, top_k=500)
    result = token_explain(context_of(loaded), settings)
    counts: dict[tuple[str, str], int] = {}
    for r in result.records:
        for k, t in enumerate(r["tokens"]):
            if k != r["position"]:
                key = (r["type"], t["token"].lower())
                counts[key] = counts.get(key, 0) + 1
    listed = {
        (kind, row["token"]): row["count"]
        for kind, sides in result.context_words_by_type.items()
        for side in ("toward", "away")
        for row in sides[side]
    }
    assert listed and all(counts[key] == count for key, count in listed.items())


def test_faithfulness_per_word_aggregates_per_type_and_overall(default_run):
    _, result = default_run
    f = result.faithfulness
    rows = [r for r in result.records if r["faithfulness"] is not None]
    assert len(rows) == len(result.records)  # every sentence has context words
    assert f["comprehensiveness_aopc"] == pytest.approx(
        np.mean([r["faithfulness"]["comprehensiveness_aopc"] for r in rows])
    )
    for kind, summary in f["by_type"].items():
        mine = [r["faithfulness"]["sufficiency_aopc"] for r in rows if r["type"] == kind]
        assert summary["n"] == len(mine) and summary["sufficiency_aopc"] == pytest.approx(np.mean(mine))
    assert result.metric_values()["comprehensiveness_aopc"].value == f["comprehensiveness_aopc"]


def test_protected_words_share_with_interval_and_groups(loaded):
    terms = ProtectedTerms(words=[*GROUP_A, *GROUP_B, "nobody-here"])
    settings = TokenSettings(**QUICK, protected_words={"origin": terms})
    result = token_explain(context_of(loaded), settings)
    share = result.protected_attribution_share["origin"]
    low, high = result.protected_attribution_share_ci["origin"]
    assert 0.0 < share < 1.0 and low <= share <= high
    assert set(result.protected_attribution_share_by_group["origin"]) == {"a", "b"}
    assert result.protected_words_missing["origin"][-1] == "nobody-here"
    # by hand: |attribution| on names over all |attribution|, averaged over the explained words
    names = {n.lower() for n in GROUP_A + GROUP_B}
    by_hand = [
        sum(abs(t["score"]) for t in r["tokens"] if t["token"].lower() in names)
        / sum(abs(t["score"]) for t in r["tokens"])
        for r in result.records
    ]
    assert share == pytest.approx(np.mean(by_hand))
    assert "protected_attribution_share[origin]" in result.metric_values()


def test_ray_local_gives_the_in_process_explanations(loaded, ray_executor):
    settings = TokenSettings(**QUICK | {"n_examples": 10})
    local = token_explain(context_of(loaded), settings)
    remote = token_explain(context_of(loaded, ray_executor), settings)
    assert [(r["id"], r["position"], r["tag"], r["steps"]) for r in remote.records] == [
        (r["id"], r["position"], r["tag"], r["steps"]) for r in local.records
    ]
    for a, b in zip(remote.records, local.records, strict=True):
        assert [t["token"] for t in a["tokens"]] == [t["token"] for t in b["tokens"]]
        np.testing.assert_allclose([t["score"] for t in a["tokens"]], [t["score"] for t in b["tokens"]], atol=1e-6)
        assert a["delta"] == pytest.approx(b["delta"], abs=1e-6)
    assert remote.steps == local.steps


def test_the_section_escapes_dataset_text(default_run):
    from auditkit.report.html import render
    from auditkit.results import AuditResult, Provenance

    _, result = default_run
    hostile = 'x<img src=x onerror="alert(1)">'
    record = result.records[0] | {"tokens": [{"token": hostile, "score": 0.5}] * 3, "position": 1, "id": hostile}
    words = {"toward": [{"token": hostile, "mean_attribution": 0.2, "count": 3, "ci": [0.1, 0.3]}], "away": []}
    tampered = result.model_copy(update={"records": [record], "context_words_by_type": {hostile: words}})
    provenance = Provenance("c" * 64, "d" * 64, "model", "e" * 64, "0", "2026-01-01T00:00:00", 1.0)
    audit = AuditResult(
        audit="a",
        description="",
        seed=0,
        provenance=provenance,
        gates=[],
        auditors={"explain": tampered},
        predictions=None,
        sensitive={},
        notes=[],
    )
    html = render(audit)
    assert "<img src=x" not in html and "x&lt;img src=x onerror=" in html
    assert "Context words that push toward" in html
    assert "tagged by the model" in html or "missed entity" in html
