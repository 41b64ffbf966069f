"""LoRA DP runs of hf-text models: adapters only are trained, Opacus' per-sample gradients are right."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant

from auditkit.adapters.capabilities import RetrainRequest
from auditkit.adapters.hf_lora import LoraClassifier, add_lora
from auditkit.adapters.hf_text import HfTextAdapter, HfTextConfig, open_model_folder
from auditkit.config import DataConfig
from auditkit.data import load_data
from auditkit.privacy.runs import RunSettings, train_run
from auditkit.progress import SILENT
from tests.conftest import base_config


def lora_model(path, rank=4):
    _, model = open_model_folder(path, "model.path", num_labels=2)
    assert add_lora(model, rank, 2.0 * rank) == 4  # query and value of 2 layers
    return LoraClassifier(model).eval()


def test_lora_starts_as_the_model_and_trains_only_adapters_and_head(tiny_bert):
    _, plain = open_model_folder(tiny_bert, "model.path", num_labels=2)
    lora = lora_model(tiny_bert)
    ids = torch.randint(5, 50, (3, 12))
    mask = torch.ones_like(ids)
    torch.testing.assert_close(lora(ids, mask), plain.eval()(input_ids=ids, attention_mask=mask).logits)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n or n.startswith("model.classifier") for n in trainable)


@pytest.mark.parametrize("mode", ["ew", "hooks"])
def test_opacus_per_sample_gradients_of_lora_equal_one_example_backward(tiny_bert, mode):
    torch.manual_seed(0)
    lora = lora_model(tiny_bert)
    if mode == "hooks":
        lora.model.config.hidden_dropout_prob = 0.0
        for m in lora.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        lora.train()
    for n, p in lora.named_parameters():
        if "lora_b" in n:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero; make A's gradients non-trivial
    ids = torch.randint(5, 50, (4, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    y = torch.tensor([0, 1, 1, 0])
    expected = []
    for i in range(4):
        lora.zero_grad()
        torch.nn.functional.cross_entropy(lora(ids[i : i + 1], mask[i : i + 1]), y[i : i + 1]).backward()
        expected.append({n: p.grad.clone() for n, p in lora.named_parameters() if p.requires_grad})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "ew":
            from opacus.grad_sample.gsm_exp_weights import GradSampleModuleExpandedWeights as Wrapper
        else:
            Wrapper = GradSampleModule
        wrapped = Wrapper(lora, batch_first=True, loss_reduction="sum")
        torch.nn.functional.cross_entropy(wrapped(ids, mask), y, reduction="sum").backward()
    for n, p in lora.named_parameters():
        if p.requires_grad:
            for i in range(4):
                torch.testing.assert_close(p.grad_sample[i], expected[i][n], atol=1e-5, rtol=1e-4)


def test_a_lora_dp_run_through_the_adapter_is_accounted_as_opacus(tiny_bert, credit_frame, tmp_path):
    credit_frame.to_csv(tmp_path / "data.csv", index=False)
    data_config = DataConfig.model_validate(base_config(str(tmp_path / "data.csv"), "m")["data"])
    adapter = HfTextAdapter.load(HfTextConfig(adapter="hf-text", path=tiny_bert, device="cpu"), data_config)
    data = load_data(data_config, 0)
    request = RetrainRequest(seed=0, base=str(tiny_bert), kind="lora", lora_rank=4)
    trainable = adapter.trainable(data, request, SILENT)
    assert "LoRA rank 4" in trainable.description
    settings = RunSettings(1, 1e-2, 32, 1.0, 1e-4, "rdp", 32, "ew", 0)
    outcome = train_run(trainable, settings, 4.0, torch.device("cpu"), SILENT)
    reference = RDPAccountant()
    reference.history = [(outcome.noise_multiplier, outcome.sample_rate, outcome.steps)]
    assert outcome.epsilon == pytest.approx(reference.get_epsilon(1e-4), rel=1e-6)
    assert outcome.epsilons["rdp"] == pytest.approx(outcome.epsilon, rel=1e-9)
    assert 0 <= outcome.clipped_share <= 1 and np.isfinite(outcome.test.logits).all()
