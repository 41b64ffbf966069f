"""Privacy runs on the MiniLM credit setting, side by side:
(a) DP step time / non-private step time on the same trainable part and batch, for Opacus'
    hooks, ghost clipping and expanded weights (ew), with glibc's default allocator and as a
    privacy run sets it (auditkit.privacy.allocator); (b) the credit sweep (3 epsilons + reference) with and without
    activation caching; (c) a DP step of LoRA on every MiniLM layer next to its non-private step."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from opacus import PrivacyEngine

from auditkit.adapters.hf_lora import lora_trainable
from auditkit.adapters.hf_retrain import text_trainable
from auditkit.adapters.hf_text import open_model_folder, resolve_base
from auditkit.config_file import load_config
from auditkit.privacy.allocator import keep_freed_memory
from auditkit.privacy.runs import RunSettings, train_run
from auditkit.progress import SILENT
from auditkit.runner import prepare

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 10


MODES = ("non-private", "hooks", "ghost", "ew")


def step_times(trainable, batch_size: int, modes: tuple[str, ...] = MODES) -> dict:
    """Median step time per mode, the modes' steps interleaved round-robin so that every mode
    sees the same machine conditions (a noisy neighbour slows all of them alike)."""
    batch = trainable.train.collate([trainable.train.dataset[i] for i in range(batch_size)])
    *inputs, labels = batch
    steps = {mode: _stepper(trainable, mode, batch_size, inputs, labels) for mode in modes}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in steps.values():  # warm-up
            step()
        for _ in range(ROUNDS):
            for mode, step in steps.items():
                started = time.perf_counter()
                step()
                times[mode].append(time.perf_counter() - started)
    median = {mode: float(np.median(t)) for mode, t in times.items()}
    return {
        "median_step_s": {k: round(v, 4) for k, v in median.items()},
        "dp_over_non_private": {m: round(median[m] / median["non-private"], 3) for m in modes[1:]},
        "target": 1.3,
        "batch": batch_size,
        "rounds": ROUNDS,
    }


def _stepper(trainable, mode: str, batch_size: int, inputs, labels):
    model = trainable.fresh()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    if mode != "non-private":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = PrivacyEngine().make_private(
                module=model,
                optimizer=optimizer,
                data_loader=trainable.train.loader(batch_size, 0),
                noise_multiplier=1.0,
                max_grad_norm=1.0,
                grad_sample_mode=mode,
                criterion=criterion,
            )
        model, optimizer = made[0], made[1]
        if mode == "ghost":
            criterion = made[2]

    def step() -> None:
        optimizer.zero_grad()
        criterion(model(*inputs), labels).backward()
        optimizer.step()

    return step


def sweep_seconds(config, prepared, base, cache: bool, top_layers: int, epochs: int) -> float:
    adapter = prepared.adapter
    started = time.perf_counter()
    trainable = text_trainable(
        base,
        adapter.tokenizer,
        prepared.data,
        adapter.max_length,
        top_layers,
        config.seed,
        adapter.device,
        SILENT,
        cache=cache,
    )
    settings = RunSettings(epochs, 5e-3, 64, 1.0, 1 / 7000, "rdp", 64, "ew", config.seed)
    for eps in (None, 1.0, 3.0, 8.0):
        train_run(trainable, settings, eps, adapter.device, SILENT)
    return time.perf_counter() - started


def lora_step_times(config, prepared, base, batch_size: int = 16, rank: int = 8) -> dict:
    """A DP step that fine-tunes the encoder itself (LoRA on every layer's query/value) next to
    the non-private step on the same module and batch; and what one run of the demo's
    settings would take at that step time (no cached activations are possible for LoRA)."""
    adapter = prepared.adapter
    trainable = lora_trainable(base, adapter.tokenizer, prepared.data, adapter.max_length, rank, config.seed, SILENT)
    out = step_times(trainable, batch_size, ("non-private", "ew"))
    privacy = config.auditors.privacy
    epochs = max(privacy.epochs) if isinstance(privacy.epochs, list) else privacy.epochs
    n_fit = round(len(prepared.data.train) * (1 - privacy.validation_share))
    steps = epochs * n_fit / batch_size
    out["steps_per_run"] = round(steps)
    out["run_s_estimate"] = {m: round(t * steps, 1) for m, t in out["median_step_s"].items()}
    out["rank"] = rank
    return out


def run() -> dict:
    config = load_config(ROOT / "audits" / "credit_risk.yaml")
    prepared = prepare(config, SILENT)
    negative, positive = prepared.data.label_names
    _, base = open_model_folder(
        resolve_base(config.model.build.base),
        "base",
        num_labels=2,
        id2label={0: negative, 1: positive},
        label2id={negative: 0, positive: 1},
    )
    trainable = text_trainable(
        base,
        prepared.adapter.tokenizer,
        prepared.data,
        prepared.adapter.max_length,
        1,
        config.seed,
        prepared.adapter.device,
        SILENT,
    )
    default_allocator = step_times(trainable, 64)
    tuned = keep_freed_memory()  # what a privacy run does first
    steps = step_times(trainable, 64)
    top = config.auditors.privacy.train_top_layers or 1  # the demo's probe has no layer to cache below
    lora = lora_step_times(config, prepared, base)
    cached = sweep_seconds(config, prepared, base, True, top, 2)
    uncached = sweep_seconds(config, prepared, base, False, top, 2)
    return {
        "what": "Opacus DP cost on the credit MiniLM setting",
        "a_step_time_top_1_layer": {
            "as_auditkit_runs": {**steps, "allocator": "glibc thresholds raised" if tuned else "default"},
            "default_glibc_allocator": default_allocator,
        },
        "c_step_time_lora_all_layers": lora,
        "b_sweep_3_epsilons_plus_reference": {
            "train_top_layers": top,
            "epochs": 2,
            "cached_s": round(cached, 1),
            "uncached_s": round(uncached, 1),
            "speedup": round(uncached / cached, 2),
            "target": 3.0,
        },
    }
