"""Integrated Gradients on tiny models: completeness, the relied-on word, batching, words, views."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from auditkit.adapters.hf_text import HfTextAdapter, HfTextConfig
from auditkit.auditors.explain import stratified_sample
from auditkit.cli import app
from auditkit.config import DataConfig
from auditkit.explain.common import STEP_SCHEDULE, Attribution, adaptive_steps, length_buckets
from auditkit.explain.text_ig import TextIG
from auditkit.explain.views import ProtectedTerms, protected_shares, top_units, unmatched_terms
from auditkit.progress import SILENT
from tests.conftest import PURPOSES, TEMPLATE, base_config, write_config


@pytest.fixture(scope="module")
def adapter(trained_tiny_bert):
    config = HfTextConfig(adapter="hf-text", path=trained_tiny_bert, device="cpu")
    return HfTextAdapter.load(config, DataConfig.model_validate(base_config("d", "m")["data"]))


@pytest.fixture(scope="module")
def texts(credit_frame):
    return [TEMPLATE.format(**row) for row in credit_frame.head(24).to_dict("records")]


def predicted_targets(adapter, texts):
    ig = TextIG(adapter)
    rows = [e.input_ids for e in ig.encode(texts)]
    logits = np.stack([ig.outputs(rows, [0] * len(rows)), ig.outputs(rows, [1] * len(rows))], axis=1)
    return logits.argmax(axis=1).tolist()


@pytest.mark.parametrize("quadrature", ["midpoint", "gauss_legendre"])
def test_completeness_within_tolerance(adapter, texts, quadrature):
    targets = predicted_targets(adapter, texts)
    ig = TextIG(adapter, quadrature=quadrature)
    result = ig.attribute([str(i) for i in range(len(texts))], texts, targets, None, 0.01, SILENT)
    for a in result:
        assert a.relative_delta <= 0.01 or a.steps == 256
        change = a.f_input - a.f_baseline
        assert abs(a.total - change) <= 0.01 * abs(change) + 1e-9 or a.steps == 256
    assert np.mean([a.relative_delta <= 0.01 for a in result]) == 1.0
    assert min(a.steps for a in result) == 16  # adaptive: easy examples stop early


def test_weights_stay_trainable_after_attribution(adapter, texts):
    flags = [p.requires_grad for p in adapter.model.parameters()]
    TextIG(adapter).attribute(["0"], texts[:1], [1], None, 1.0, SILENT, schedule=[16])
    assert [p.requires_grad for p in adapter.model.parameters()] == flags


def test_only_examples_above_tolerance_are_redone_at_the_next_step_count():
    calls = []
    needed = np.array([16, 24, 48, 16])  # the step count at which each example first meets tolerance

    def attribute_at(pending, steps):
        calls.append((steps, pending.tolist()))
        return np.where(needed[pending] <= steps, 0.001, 0.5)

    done = []
    steps, deltas = adaptive_steps(4, STEP_SCHEDULE, 0.01, attribute_at, done.append)
    assert calls == [(16, [0, 1, 2, 3]), (24, [1, 2]), (32, [2]), (48, [2])]
    assert steps.tolist() == [16, 24, 48, 16] and (deltas <= 0.01).all()
    assert sum(done) == 4


def test_the_word_the_model_relies_on_gets_the_largest_attribution(adapter, texts):
    targets = predicted_targets(adapter, texts)
    result = TextIG(adapter).attribute([str(i) for i in range(len(texts))], texts, targets, None, 0.01, SILENT)
    hits = 0
    for a in result:
        top = a.units[int(np.argmax(np.abs(a.scores)))]
        hits += top.lower() in PURPOSES
    assert hits / len(result) >= 0.8, [a.units[int(np.argmax(np.abs(a.scores)))] for a in result]


def test_batched_equals_one_at_a_time(adapter, texts):
    targets = predicted_targets(adapter, texts)
    ids = [str(i) for i in range(len(texts))]
    batched = TextIG(adapter, token_budget=1 << 16).attribute(ids, texts, targets, None, 1.0, SILENT, schedule=[32])
    single = TextIG(adapter, max_rows=1, token_budget=64).attribute(
        ids, texts, targets, None, 1.0, SILENT, schedule=[32]
    )
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        assert a.f_baseline == pytest.approx(b.f_baseline, abs=1e-5)


def test_words_join_back_into_the_original_text(adapter):
    text = "Unbelievably, the applicant's savings (1000 DM or more) look GOOD!"
    a = TextIG(adapter).attribute(["x"], [text], [1], None, 1.0, SILENT, schedule=[16])[0]
    rebuilt, cursor = "", 0
    for unit, (start, end) in zip(a.units, a.spans, strict=True):
        assert text[start:end] == unit
        rebuilt += text[cursor:start] + unit
        cursor = end
    assert rebuilt + text[cursor:] == text
    assert "Unbelievably" in a.units  # word pieces were summed into the word


def test_length_buckets_respect_the_budget():
    lengths = [5, 50, 7, 48, 6, 51]
    buckets = length_buckets(lengths, max_rows=10, token_budget=120)
    assert sorted(i for b in buckets for i in b) == list(range(6))
    for bucket in buckets:
        assert len(bucket) * max(lengths[i] for i in bucket) <= 120


def unit(units, scores, spans=None):
    return Attribution("x", 1, units, spans, np.array(scores, float), 0.0, 0.0, 16, 0.0)


def test_protected_share_known_answer():
    terms = ProtectedTerms(words=["male", "female"], patterns=[r"\d+ year old"])
    text = "A 35 year old female asks"
    spans = [(0, 1), (2, 4), (5, 9), (10, 13), (14, 20), (21, 25)]
    a = unit(["A", "35", "year", "old", "female", "asks"], [0.1, 0.2, -0.1, 0.1, -0.3, 0.2], spans)
    share = protected_shares([a], [text], terms)[0]
    assert share == pytest.approx((0.2 + 0.1 + 0.1 + 0.3) / 1.0)
    only_words = protected_shares([a], [text], ProtectedTerms(words=["FEMALE"]))[0]
    assert only_words == pytest.approx(0.3)
    tabular = unit(["sex=female", "income=3000"], [0.5, -1.5])
    assert protected_shares([tabular], [None], ProtectedTerms(words=["sex"]))[0] == pytest.approx(0.25)


def test_a_protected_word_the_tokenizer_splits_is_matched_on_the_text(adapter):
    text = "An African-American applicant asks for 500 DM; african american, not Africans."
    a = TextIG(adapter).attribute(["x"], [text], [1], None, 1.0, SILENT, schedule=[16])[0]
    assert "African-American" not in a.units and {"African", "-", "American"} <= set(a.units)
    terms = ProtectedTerms(words=["African-American", "african american", "Africa", "Latino"])
    flagged = [u for u, f in zip(a.units, terms.mask(a, text), strict=True) if f]
    assert flagged == ["African", "-", "American", "african", "american"]  # never "Africans", a longer word
    magnitude = np.abs(a.scores)
    expected = magnitude[[i for i, u in enumerate(a.units[:6]) if u in ("African", "-", "American")]].sum()
    expected += magnitude[[i for i, u in enumerate(a.units) if u in ("african", "american")]].sum()
    assert protected_shares([a], [text], terms)[0] == pytest.approx(expected / magnitude.sum())
    assert unmatched_terms([a], [text], terms) == ["Africa", "Latino"]


def test_unmatched_terms_for_tabular_units():
    tabular = unit(["sex=female", "age_group=under 25"], [0.5, -1.5])
    terms = ProtectedTerms(words=["female", "male"], patterns=[r"under \d+", "over"])
    assert terms.mask(tabular, None).tolist() == [True, True]
    assert unmatched_terms([tabular], [None], terms) == ["male", "over"]


def test_top_units_are_signed_toward_the_favourable_label():
    a = unit(["good", "bad"], [1.0, -1.0])
    b = unit(["good", "bad"], [-2.0, 2.0])  # explains the negative label: signs flip
    positive, negative = top_units([a, b], [True, False], k=5, min_count=1)
    assert positive[0] == {"token": "good", "mean_attribution": 1.5, "count": 2}
    assert negative[0]["token"] == "bad" and negative[0]["mean_attribution"] == -1.5


def test_stratified_sample_covers_every_stratum():
    strata = np.array(["a|correct"] * 90 + ["a|incorrect"] * 6 + ["b|correct"] * 3 + ["b|incorrect"] * 1)
    picked = stratified_sample(strata, 20, np.random.default_rng(0))
    assert len(picked) == 20 and len(set(picked)) == 20
    assert set(strata[picked]) == set(strata)


def test_explain_auditor_through_the_cli(tmp_path, credit_frame, trained_tiny_bert):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    config = base_config("data.csv", str(trained_tiny_bert))
    from auditkit.config_file import load_config
    from auditkit.data import load_data

    write_config(tmp_path, config)
    wanted = str(sorted(load_data(load_config(tmp_path / "audit.yaml").data, 0).test.ids)[-1])
    config["auditors"]["explain"] = {
        "n_examples": 12,
        "ids": [wanted],
        "protected_words": {
            "sex": {"words": ["male", "female", "nonbinary"]},
            "age_group": {"patterns": [r"\d+ year old"]},
        },
    }
    config["gates"] = [{"metric": "explain.protected_attribution_share[sex]", "op": "<=", "threshold": 0.5}]
    write_config(tmp_path, config)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "audit.yaml"), "--out", str(out), "--quiet"])
    assert result.exit_code in (0, 1), result.stderr
    lines = [json.loads(line) for line in (out / "attributions.jsonl").read_text().splitlines()]
    assert 12 <= len(lines) <= 13 and wanted in {line["id"] for line in lines}
    for line in lines:
        assert {"id", "target", "tokens", "delta", "steps"} <= set(line)
        assert sum(t["score"] for t in line["tokens"]) == pytest.approx(
            line["f_input"] - line["f_baseline"], rel=0.011, abs=1e-6
        )
    explain = json.loads((out / "summary.json").read_text())["auditors"]["explain"]
    assert explain["method"] == "integrated_gradients" and explain["n_examples"] == len(lines)
    assert explain["faithfulness"]["comprehensiveness_aopc"] > explain["faithfulness"]["random_comprehensiveness_aopc"]
    assert 0 <= explain["protected_attribution_share"]["sex"] <= 1
    assert set(explain["protected_attribution_share_by_group"]["sex"]) <= {"male", "female"}
    assert explain["top_tokens"] and "token" in explain["top_tokens"][0]
    assert explain["protected_words_missing"] == {"sex": ["nonbinary"]}
    assert explain["units"] == "words" and explain["baseline"] == "pad"
    html = (out / "report.html").read_text()
    assert "attribution-heatmap" in html and "&#39;nonbinary&#39; matched no attributed word" in html
    assert "PAD tokens" in html


def test_explain_config_checks(workspace):
    config = yaml.safe_load((workspace / "audit.yaml").read_text())
    config["auditors"]["explain"] = {"protected_words": {"religion": {"words": ["x"]}}}
    write_config(workspace, config)
    result = CliRunner().invoke(app, ["validate", str(workspace / "audit.yaml")])
    assert result.exit_code == 2 and "religion" in result.stderr
