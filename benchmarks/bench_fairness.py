"""Fairness intervals: auditkit's multinomial cell bootstrap against fairlearn's
MetricFrame(n_boot) at equal replicates on the same 100k rows, side by side (arms interleaved,
median of per-round ratios); then
1M rows x 1000 replicates; then a 100k-row tabular audit through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

from auditkit.stats.groups import GroupRules, group_metrics
from benchmarks.interleave import interleaved

N_ROWS = 100_000
N_BOOT = 100
ROUNDS = 3  # fairlearn and auditkit alternate, the speed-up is the median of the per-round ratios
RATES = {"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate}


def population(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["female", "male"], n, p=[0.4, 0.6]),
            "age_group": rng.choice(["young", "middle", "old"], n, p=[0.2, 0.5, 0.3]),
        }
    )
    shift = 0.4 * (frame["sex"] == "male") + 0.2 * (frame["age_group"] == "old")
    y = (rng.random(n) < 0.4 + 0.2 * shift).astype(int)
    pred = (rng.random(n) < np.where(y == 1, 0.7, 0.2) + 0.1 * shift).astype(int)
    return frame, y, pred


def fairlearn_vs_auditkit() -> dict:
    frame, y, pred = population(N_ROWS)
    rules = GroupRules(n_boot=N_BOOT)

    def fairlearn() -> MetricFrame:
        return MetricFrame(
            metrics=RATES,
            y_true=y,
            y_pred=pred,
            sensitive_features=frame,
            n_boot=N_BOOT,
            ci_quantiles=[0.025, 0.975],
            random_state=0,
        )

    def auditkit() -> dict:
        slices = [["sex"], ["age_group"], ["sex", "age_group"]]
        return group_metrics(y, pred, None, frame, slices, rules, np.random.default_rng(0))

    side = interleaved({"fairlearn": fairlearn, "auditkit": auditkit}, ROUNDS)
    mf, reports = side.pop("last").values()
    fairlearn_s, auditkit_s = side["median_s"]["fairlearn"], side["median_s"]["auditkit"]
    # Compare the intersectional groups' interval bounds, in units of their Monte-Carlo error.
    ours = reports["sex*age_group"].groups
    worst = 0.0
    rows = []
    for key in mf.by_group.index:
        group = "*".join(key)
        for rate in RATES:
            low, high = mf.by_group_ci[0].loc[key, rate], mf.by_group_ci[1].loc[key, rate]
            mine = ours[group].rates[rate].ci
            sd = (high - low) / (2 * 1.96)  # bootstrap SD of the rate
            mc_error = np.sqrt(2) * 2.67 * sd / np.sqrt(N_BOOT)  # SE of the difference of two 2.5% quantiles
            gap = max(abs(mine[0] - low), abs(mine[1] - high)) / mc_error
            worst = max(worst, gap)
            rows.append(
                {
                    "group": group,
                    "rate": rate,
                    "fairlearn": [low, high],
                    "auditkit": list(mine),
                    "gap_in_mc_errors": round(gap, 2),
                }
            )
    return {
        "rows": N_ROWS,
        "replicates": N_BOOT,
        "intersectional_groups": len(mf.by_group),
        "fairlearn_metricframe_s": round(fairlearn_s, 2),
        "auditkit_s": round(auditkit_s, 4),
        "speedup": round(side["median_ratio_fairlearn_over"]["auditkit"]),
        "interleaved": side,
        "target_speedup": 1000,
        "auditkit_work": "3 slices x 7 rates x 7 disparities (fairlearn: 1 slice x 3 rates)",
        "worst_bound_gap_in_mc_errors": round(worst, 2),
        "bounds_within_3_mc_errors": worst <= 3,
        "intervals": rows,
    }


def million_rows() -> dict:
    frame, y, pred = population(1_000_000, seed=1)
    started = time.perf_counter()
    group_metrics(
        y,
        pred,
        None,
        frame,
        [["sex"], ["age_group"], ["sex", "age_group"]],
        GroupRules(n_boot=1000),
        np.random.default_rng(0),
    )
    seconds = time.perf_counter() - started
    return {"rows": 1_000_000, "replicates": 1000, "seconds": round(seconds, 3), "target_s": 2.0}


def cli_tabular_audit() -> dict:
    frame, y, _ = population(N_ROWS, seed=2)
    rng = np.random.default_rng(3)
    frame["income"] = rng.normal(3000, 800, N_ROWS).round()
    frame["outcome"] = np.where(y == 1, "approved", "declined")
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_parquet(Path(tmp) / "data.parquet")
        config = {
            "name": "bench100k",
            "seed": 0,
            "data": {
                "path": "data.parquet",
                "label": "outcome",
                "positive_label": "approved",
                "negative_label": "declined",
                "sensitive_features": ["sex", "age_group"],
            },
            "model": {
                "adapter": "torch-tabular",
                "path": "model",
                "build": {"epochs": 2, "batch_size": 512, "features": ["income", "sex", "age_group"]},
            },
            "auditors": {"performance": {}, "fairness": {"intersections": [["sex", "age_group"]]}},
            "gates": [{"rule": "four_fifths", "slice": "sex"}],
        }
        (Path(tmp) / "audit.yaml").write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "auditkit", "run", "audit.yaml", "--out", "out", "--quiet"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        total = time.perf_counter() - started
        assert proc.returncode in (0, 1), proc.stderr
        summary = json.loads((Path(tmp) / "out" / "summary.json").read_text())
    return {
        "rows": N_ROWS,
        "test_rows": summary["auditors"]["performance"]["metrics"]["n"],
        "fairness_auditor_s": summary["provenance"]["auditor_seconds"]["fairness"],
        "whole_cli_run_s": round(total, 1),
    }


def run() -> dict:
    return {
        "what": "fairness intervals: multinomial cell bootstrap vs fairlearn MetricFrame(n_boot)",
        "fairlearn_vs_auditkit_100k": fairlearn_vs_auditkit(),
        "auditkit_1m_rows_1000_replicates": million_rows(),
        "cli_tabular_audit_100k": cli_tabular_audit(),
    }
