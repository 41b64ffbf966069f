from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from auditkit.adapters.hf_text import HfTextAdapter, HfTextConfig, encode, pad
from auditkit.adapters.torch_tabular import TabularConfig, TorchTabularAdapter
from auditkit.config import DataConfig
from auditkit.data import load_data
from auditkit.errors import AuditError
from auditkit.progress import SILENT
from tests.conftest import base_config


@pytest.fixture()
def data(tmp_path, credit_frame):
    credit_frame.to_csv(tmp_path / "d.csv", index=False)
    return load_data(DataConfig.model_validate(base_config(str(tmp_path / "d.csv"), "m")["data"]), seed=0)


def hf_adapter(path, **kw) -> HfTextAdapter:
    config = HfTextConfig(adapter="hf-text", path=path, device="cpu", **kw)
    data_config = DataConfig.model_validate(base_config("d.csv", "m")["data"])
    return HfTextAdapter.load(config, data_config)


def test_hf_scores_do_not_depend_on_batching_or_padding(tiny_bert, data):
    one = hf_adapter(tiny_bert, batch_size=1).predict(data.test, SILENT)
    many = hf_adapter(tiny_bert, batch_size=64).predict(data.test, SILENT)
    np.testing.assert_allclose(one.scores, many.scores, atol=1e-6)
    assert list(one.ids) == list(data.test.ids)
    assert ((one.scores >= 0.5) == one.y_pred).all()


def test_hf_scores_equal_a_direct_forward_pass(tiny_bert, data):
    adapter = hf_adapter(tiny_bert)
    text = data.test.texts[4]
    enc = adapter.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        direct = torch.softmax(adapter.model(**enc).logits, -1)[0, 1].item()
    assert adapter.predict(data.test, SILENT).scores[4] == pytest.approx(direct, abs=1e-6)


def test_truncation_counts_long_texts(tiny_bert):
    adapter = hf_adapter(tiny_bert, max_length=12)
    encoded = encode(adapter.tokenizer, ["education " * 30, "car"], 12)
    assert encoded.n_truncated == 1
    assert len(encoded.input_ids[0]) == 12
    assert encoded.input_ids[0][-1] == adapter.tokenizer.sep_token_id


def test_pad_builds_mask_to_batch_maximum():
    ids, mask = pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_trainable_copy_is_independent(tiny_bert, data):
    adapter = hf_adapter(tiny_bert)
    copy = adapter.trainable_copy()
    with torch.no_grad():
        next(copy.parameters()).add_(1.0)
    assert not torch.equal(next(copy.parameters()), next(adapter.model.parameters()))
    batch = adapter.training_data(data.train).loader(4, seed=0)
    ids, mask, labels = next(iter(batch))
    assert copy(ids, mask).shape == (4, 2)


def test_positive_index_read_from_id2label(tmp_path, tiny_bert):
    model = tmp_path / "swapped"
    model.mkdir()
    for f in tiny_bert.iterdir():
        model.joinpath(f.name).write_bytes(f.read_bytes())
    config = json.loads((model / "config.json").read_text())
    config["id2label"] = {"0": "good", "1": "bad"}
    config["label2id"] = {"good": 0, "bad": 1}
    (model / "config.json").write_text(json.dumps(config))
    assert hf_adapter(model).positive_index == 0
    assert hf_adapter(model, positive_index=1).positive_index == 1


def test_tabular_build_load_predict(tmp_path, data):
    from auditkit.adapters.torch_tabular import TabularBuild

    config = TabularConfig(
        adapter="torch-tabular",
        path=tmp_path / "mlp",
        device="cpu",
        build=TabularBuild(epochs=30, features=["age", "amount", "purpose", "sex"]),
    )
    (tmp_path / "mlp").mkdir()
    TorchTabularAdapter.build(config, data, tmp_path / "mlp", seed=0, progress=SILENT)
    assert sorted(p.name for p in (tmp_path / "mlp").iterdir()) == ["encoding.json", "model.safetensors"]
    adapter = TorchTabularAdapter.load(config, DataConfig.model_validate(base_config("d", "m")["data"]))
    assert "purpose=education" in adapter.feature_names
    predictions = adapter.predict(data.test, SILENT)
    accuracy = (predictions.y_pred == data.test.y).mean()
    assert accuracy > 0.75  # the label follows the purpose word up to 10% noise


def test_tabular_unknown_category_encodes_as_zeros(data):
    from auditkit.adapters.torch_tabular import FeatureEncoding

    encoding = FeatureEncoding.fit(data.train.frame, ["purpose"])
    frame = data.test.frame.head(2).assign(purpose=["education", "space travel"])
    x = encoding.transform(frame)
    assert x[0].sum() == 1 and x[1].sum() == 0


def test_tabular_needs_safetensors(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pt").write_bytes(b"pickle")
    config = TabularConfig(adapter="torch-tabular", path=tmp_path / "m")
    with pytest.raises(AuditError, match="safetensors"):
        TorchTabularAdapter.load(config, DataConfig.model_validate(base_config("d", "m")["data"]))
