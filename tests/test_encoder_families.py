"""Every Hugging Face encoder family through ``hf-text``: a tiny random model of each, built from its
config, scored, explained (IG completeness), split into bottom and top exactly, and DP-trained with
the epsilon Opacus' own accountant gives."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.validators import ModuleValidator
from scipy.special import softmax
from typer.testing import CliRunner

from auditkit.adapters.capabilities import RetrainRequest
from auditkit.adapters.hf_families import FullRecompute, split
from auditkit.adapters.hf_text import HfTextAdapter, open_model_folder
from auditkit.cli import app
from auditkit.config_file import load_config
from auditkit.data import load_data
from auditkit.explain.text_ig import TextIG
from auditkit.privacy.runs import RunSettings, train_run
from auditkit.progress import SILENT
from auditkit.tokens import pad
from tests.conftest import TEMPLATE, base_config, train_tokenizer, write_config

FAMILIES = ["bert", "roberta", "deberta-v2", "distilbert", "electra"]
SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def bpe_tokenizer(texts: list[str], folder):
    """A byte-level BPE tokenizer with RoBERTa's special tokens and ids (<s>=0, <pad>=1, </s>=2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>",
    )  # fmt: skip
    fast.save_pretrained(folder)
    return fast


def family_config(family: str, vocab_size: int, pad_id: int):
    from transformers import AutoConfig

    if family == "distilbert":
        sizes = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64}
        return AutoConfig.for_model(family, vocab_size=vocab_size, max_position_embeddings=130, **sizes)
    extra = {
        "roberta": {"bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1},
        # DeBERTa-v3's layout: relative attention with shared keys, buckets, normalised relative
        # embeddings, no absolute positions; a conv after layer 0 (as in DeBERTa-v2-xlarge).
        "deberta-v2": {
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "position_buckets": 16,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "conv_kernel_size": 3,
        },
        "electra": {"embedding_size": 16},  # ELECTRA projects smaller embeddings up to the hidden size
    }.get(family, {})
    return AutoConfig.for_model(
        family, vocab_size=vocab_size, max_position_embeddings=130, pad_token_id=pad_id, **SIZE, **extra
    )


def make_family_model(family: str, folder, texts: list[str], seed: int = 0):
    from transformers import AutoModelForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bpe_tokenizer(texts, folder) if family == "roberta" else train_tokenizer(texts, folder)
    torch.manual_seed(seed)
    config = family_config(family, len(tokenizer), tokenizer.pad_token_id)
    config.initializer_range = 0.2  # logits far enough apart that IG has something to attribute
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder)  # safetensors
    assert list(folder.glob("*.safetensors"))
    return folder


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory, credit_frame):
    """A folder with data.csv, audit.yaml and the family's tiny model under model/."""
    folder = tmp_path_factory.mktemp(request.param)
    texts = [TEMPLATE.format(**row) for row in credit_frame.to_dict("records")]
    make_family_model(request.param, folder / "model", texts)
    credit_frame.to_csv(folder / "data.csv", index=False)
    write_config(folder, base_config("data.csv", str(folder / "model")))
    return folder


@pytest.fixture(scope="module")
def loaded(family_dir):
    config = load_config(family_dir / "audit.yaml")
    data = load_data(config.data, 0)
    return HfTextAdapter.load(config.model, config.data), data


def padded_batch(adapter, texts):
    return pad([e.input_ids for e in adapter.encode_words(texts)], adapter.tokenizer.pad_token_id)


def test_top_of_bottom_is_the_model(loaded):
    adapter, data = loaded
    model = adapter.model.eval()
    ids, mask = padded_batch(adapter, data.test.texts[:12])
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        for k in (0, 1, 2):
            bottom, top = split(model, k)
            got = top.eval()(bottom(ids, mask), mask)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(FullRecompute(model, k).eval()(ids, mask), expected, rtol=1e-5, atol=1e-5)
            for pooling in ("pooler", "mean"):
                assert ModuleValidator.validate(split(model, k, pooling)[1].train(), strict=False) == []
    trainable = {name for name, p in split(model, 1)[1].named_parameters() if p.requires_grad}
    assert trainable and any(name.startswith("stack.layers.0.") for name in trainable)
    for k in (0, 1):  # without cached activations the head trains too (it was copied frozen with the model)
        recompute = [name for name, p in FullRecompute(model, k).named_parameters() if p.requires_grad]
        assert any(name.startswith("head.") for name in recompute), (k, recompute)
        assert any(not name.startswith("head.") for name in recompute) == (k > 0), (k, recompute)


def test_scores_equal_the_model_one_example_at_a_time(loaded):
    adapter, data = loaded
    predicted = adapter.predict(data.test, SILENT)
    tokenizer, model = open_model_folder(adapter.model_dir, "model.path")
    expected = []
    with torch.no_grad():
        for text in data.test.texts[:20]:
            enc = tokenizer(text, return_tensors="pt")  # unpadded: the model's own positions and masks
            expected.append(softmax(model(input_ids=enc["input_ids"]).logits[0].double().numpy())[1])
    np.testing.assert_allclose(predicted.scores[:20], expected, rtol=1e-5, atol=1e-6)
    assert predicted.probabilities.shape == (len(data.test), 2)


def test_integrated_gradients_complete(loaded):
    adapter, data = loaded
    texts = data.test.texts[:50]  # 98% of 50 leaves room for one example at the tolerance edge
    ig = TextIG(adapter)
    rows = [e.input_ids for e in ig.encode(texts)]
    targets = ig.outputs(rows, [0] * len(rows)) < ig.outputs(rows, [1] * len(rows))
    result = ig.attribute([str(i) for i in range(len(texts))], texts, targets.astype(int).tolist(), None, 0.01, SILENT)
    within = [abs(a.total - (a.f_input - a.f_baseline)) <= 0.01 * abs(a.f_input - a.f_baseline) + 1e-9 for a in result]
    assert np.mean(within) >= 0.98
    assert max(abs(a.f_input - a.f_baseline) for a in result) > 1e-3  # not a trivially constant model
    # F(baseline) independently: the baseline's word embeddings with the input's positions, one example at a time.
    model = adapter.model
    for a in result[:4]:
        base = torch.as_tensor([ig.baseline_ids(a.inputs)])
        with torch.no_grad():
            embeds = model.get_input_embeddings()(base)
            logits = model(inputs_embeds=embeds, attention_mask=torch.ones_like(base)).logits[0]
        assert float(logits[a.target]) == pytest.approx(a.f_baseline, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("top_layers", [1, 0])
def test_dp_run_epsilon_equals_opacus_accountant(loaded, family_dir, top_layers):
    adapter, data = loaded
    request = RetrainRequest(seed=0, top_layers=top_layers, base=str(family_dir / "model"))
    trainable = adapter.trainable(data, request, SILENT)
    assert f"top {top_layers} of 2 layers" in trainable.description
    assert "on cached activations" in trainable.description  # every family's top runs standalone
    settings = RunSettings(1, 1e-3, 32, 1.0, 1e-3, "rdp", 32, "ew", 0)
    outcome = train_run(trainable, settings, 3.0, adapter.device, SILENT)
    n = len(data.train)
    sample_rate = 1 / math.ceil(n / 32)  # Opacus' Poisson rate for a loader of ceil(n / batch) batches
    steps = math.ceil(n / 32)
    noise = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-3, sample_rate=sample_rate, epochs=1)
    assert outcome.sample_rate == pytest.approx(sample_rate) and outcome.steps == steps
    assert outcome.noise_multiplier == pytest.approx(noise, rel=1e-6)
    reference = RDPAccountant()
    reference.history = [(noise, sample_rate, steps)]
    assert outcome.epsilon == pytest.approx(reference.get_epsilon(1e-3), rel=1e-6)
    assert outcome.epsilon <= 3.0 * 1.01
    assert outcome.test.logits.shape == (len(data.test), 2) and np.isfinite(outcome.test.logits).all()


@pytest.mark.slow
def test_all_four_auditors_through_the_cli(family_dir):
    config = base_config("data.csv", str(family_dir / "model"))
    config["auditors"] = {
        "performance": {"n_boot": 50},
        "fairness": {"n_boot": 50, "min_group_size": 5},
        "explain": {"n_examples": 8, "n_boot": 50},
        "privacy": {
            "epsilons": [3.0],
            "epochs": 1,
            "batch_size": 32,
            "n_boot": 50,
            "min_group_size": 5,
            "train_top_layers": 1,
            "lira_shadows": 2,  # LiRA itself is tested in test_privacy_runs; here: every family trains shadows
            "base": str(family_dir / "model"),
        },
    }
    config["gates"] = []
    path = write_config(family_dir, config, "all.yaml")
    out = family_dir / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    auditors = json.loads((out / "summary.json").read_text())["auditors"]
    assert {"performance", "fairness", "explain", "privacy"} <= set(auditors)
    lines = [json.loads(line) for line in (out / "attributions.jsonl").read_text().splitlines()]
    change = [x["f_input"] - x["f_baseline"] for x in lines]
    error = [abs(sum(t["score"] for t in x["tokens"]) - c) for x, c in zip(lines, change, strict=True)]
    assert np.mean([e <= 0.011 * abs(c) + 1e-6 for e, c in zip(error, change, strict=True)]) >= 0.98
    privacy = auditors["privacy"]
    assert "on cached activations" in privacy["trained"]
    for run in privacy["runs"]:
        reference = RDPAccountant()
        reference.history = [(run["noise_multiplier"], run["sample_rate"], run["steps"])]
        assert run["epsilon"] == pytest.approx(reference.get_epsilon(run["delta"]), rel=1e-6)


def test_unknown_structure_is_refused_at_validate(tmp_path, credit_frame):
    from transformers import AlbertConfig, AlbertForSequenceClassification

    texts = [TEMPLATE.format(**row) for row in credit_frame.head(40).to_dict("records")]
    folder = tmp_path / "albert"
    tokenizer = train_tokenizer(texts, folder)
    config = AlbertConfig(vocab_size=len(tokenizer), embedding_size=16, **SIZE)
    AlbertForSequenceClassification(config).save_pretrained(folder)
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    audit = base_config("data.csv", str(folder))
    audit["auditors"]["privacy"] = {"base": str(folder)}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, audit))])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "albert" in lines[0] and "auditors.privacy.base" in lines[0] and "Traceback" not in result.output
