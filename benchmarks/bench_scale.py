"""Fairness over a prediction set too large for memory (10^8 rows, 3 sensitive features).

(a) The full size: Parquet written in chunks to a temporary folder, then one streaming pass
    (pyarrow, batch by batch) and the statistics on the counts; wall time and peak RSS of the
    process that does it.
(b) Side by side at a size where both run: the streaming pass against the in-memory path
    (read the table into pandas, group_metrics with exact DeLong AUC), arms interleaved in
    separate processes so each one's peak RSS is its own; intervals compared.
(c) The same counts through Ray Data on a one-node Ray (2 CPUs) against the pyarrow pass.

AUDITKIT_BENCH_ROWS sets (a)'s size (default 10^8), AUDITKIT_BENCH_SIDE_ROWS (b)'s (10^7),
AUDITKIT_BENCH_ROUNDS the rounds of (b) and (c) (3).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = int(float(os.environ.get("AUDITKIT_BENCH_ROWS", "1e8")))
SIDE_ROWS = int(float(os.environ.get("AUDITKIT_BENCH_SIDE_ROWS", "1e7")))
ROUNDS = int(os.environ.get("AUDITKIT_BENCH_ROUNDS", "3"))
CHUNK = 5_000_000
FEATURES = ("sex", "region", "age_group")
VALUES = {
    "sex": (["female", "male"], [0.48, 0.52]),
    "region": (["north", "south", "east", "west", "isles"], [0.3, 0.3, 0.2, 0.19, 0.01]),
    "age_group": (["under 25", "25-60", "over 60"], [0.2, 0.55, 0.25]),
}
SLICES = [["sex"], ["region"], ["age_group"], ["sex", "region", "age_group"]]
N_BOOT = 1000
ROOT = Path(__file__).resolve().parents[1]


def write_predictions(folder: Path, rows: int, seed: int = 0) -> float:
    """``rows`` synthetic predictions as Parquet files of CHUNK rows; returns the size in GB."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        columns, effect = {}, np.zeros(n)
        for name, (values, p) in VALUES.items():
            codes = rng.choice(len(values), n, p=p).astype(np.int8)
            columns[name] = pa.DictionaryArray.from_arrays(codes, values)
            effect += 0.15 * codes / len(values)
        y = rng.random(n) < 0.3 + effect / 2
        logit = 1.5 * (y - 0.5) + effect + rng.normal(0, 1, n)
        columns["label"] = y.astype(np.int8)
        columns["score"] = (1 / (1 + np.exp(-logit))).astype(np.float32)
        pq.write_table(pa.table(columns), folder / f"part-{k:04d}.parquet", row_group_size=1 << 20)
    return sum(f.stat().st_size for f in folder.iterdir()) / 1e9


def _summary(reports, bounds) -> dict:
    out = {}
    for name, report in reports.items():
        groups = {
            g: {r: [e.value, list(e.ci) if e.ci else None] for r, e in entry.rates.items()}
            for g, entry in report.groups.items()
        }
        disparities = {d: [e.value, list(e.ci) if e.ci else None] for d, e in report.disparities.items()}
        out[name] = {"groups": groups, "disparities": disparities, "auc_bounds": (bounds or {}).get(name)}
    return out


def arm(kind: str, folder: str, out: str) -> None:
    """One arm in its own process: the statistics and this process's peak RSS, as JSON to ``out``."""
    from auditkit.stats.groups import GroupRules

    started = time.perf_counter()
    rules, rng = GroupRules(n_boot=N_BOOT), np.random.default_rng(0)
    bounds = None
    if kind == "in_memory":
        import pandas as pd

        from auditkit.stats.groups import group_metrics

        frame = pd.read_parquet(folder)
        y = frame["label"].to_numpy().astype(np.int64)
        scores = frame["score"].to_numpy().astype(np.float64)
        reports = group_metrics(y, (scores >= 0.5).astype(np.int64), scores, frame, SLICES, rules, rng)
    else:
        from auditkit.execution import ExecutionSettings, open_executor
        from auditkit.streaming.counts import CountSpec, count_predictions
        from auditkit.streaming.fairness import group_metrics_from_counts

        spec = CountSpec(FEATURES, "label", 1, 0, "score")
        settings = ExecutionSettings(engine="ray" if kind == "ray" else "in_process", num_cpus=2)
        with open_executor(settings) as executor:
            counts = count_predictions(folder, spec, executor)
        reports, bounds = group_metrics_from_counts(counts, SLICES, rules, rng)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "stats": _summary(reports, bounds)}))


def run_arm(kind: str, folder: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_scale", kind, str(folder), out.name], check=True, cwd=ROOT
        )
        record = json.loads(Path(out.name).read_text())
    record["process_s"] = time.perf_counter() - started  # with the interpreter's start and imports
    return record


def compare(streamed: dict, in_memory: dict) -> dict:
    """Largest gaps between the two paths: rates and disparities (same counts, same seed: none
    expected) and ROC AUC (binned vs exact), the AUC gap against its stated bound."""
    rate_gap, auc_gap, auc_ci_gap, within = 0.0, 0.0, 0.0, True
    for name, s in streamed.items():
        m = in_memory[name]
        for group, rates in s["groups"].items():
            for rate, (value, ci) in rates.items():
                other, other_ci = m["groups"][group][rate]
                if value is None or other is None:
                    continue
                gap = abs(value - other)
                if rate == "roc_auc":
                    auc_gap = max(auc_gap, gap)
                    within &= gap <= s["auc_bounds"][group] + 1e-12
                    auc_ci_gap = max(auc_ci_gap, *(abs(a - b) for a, b in zip(ci, other_ci, strict=True)))
                else:
                    gaps = [gap, *(abs(a - b) for a, b in zip(ci or [], other_ci or [], strict=True))]
                    rate_gap = max(rate_gap, *gaps)
        for d, (value, ci) in s["disparities"].items():
            other, other_ci = m["disparities"][d]
            if value is not None and other is not None:
                gaps = [abs(value - other), *(abs(a - b) for a, b in zip(ci or [], other_ci or [], strict=True))]
                rate_gap = max(rate_gap, *gaps)
    largest_bound = max(b for s in streamed.values() for b in (s["auc_bounds"] or {}).values())
    return {
        "largest_rate_or_disparity_gap_incl_intervals": rate_gap,
        "largest_auc_gap": auc_gap,
        "largest_auc_interval_bound_gap": auc_ci_gap,
        "largest_stated_auc_bound": largest_bound,
        "every_auc_within_its_bound": bool(within),
    }


def _interleaved(kinds: list[str], folder: Path) -> dict:
    records: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(ROUNDS):
        for kind in kinds:
            records[kind].append(run_arm(kind, folder))
    first, second = kinds
    ratios = [b["seconds"] / a["seconds"] for a, b in zip(records[first], records[second], strict=True)]
    return {
        "rounds": ROUNDS,
        "order": kinds,
        "seconds": {k: [round(r["seconds"], 2) for r in v] for k, v in records.items()},
        "peak_rss_mb": {k: [round(r["peak_rss_mb"]) for r in v] for k, v in records.items()},
        f"median_ratio_{second}_over_{first}": round(float(np.median(ratios)), 3),
        "per_round_ratios": [round(x, 3) for x in ratios],
        "records": records,
    }


def run() -> dict:
    out: dict = {"what": "fairness over big prediction sets: streaming counts vs in-memory"}
    with tempfile.TemporaryDirectory() as tmp:
        side = Path(tmp) / f"side_{SIDE_ROWS}"
        started = time.perf_counter()
        gb = write_predictions(side, SIDE_ROWS, seed=1)
        both = _interleaved(["streaming", "in_memory"], side)
        records = both.pop("records")
        both["intervals"] = compare(records["streaming"][-1]["stats"], records["in_memory"][-1]["stats"])
        out["b_side_by_side"] = {"rows": SIDE_ROWS, "parquet_gb": round(gb, 2), **both}
        ray = _interleaved(["streaming", "ray"], side)
        ray_records = ray.pop("records")
        ray["same_statistics"] = ray_records["ray"][-1]["stats"] == ray_records["streaming"][-1]["stats"]
        out["c_ray_data_one_node_2_cpus"] = {"rows": SIDE_ROWS, **ray}
        print(f"side by side done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for f in side.iterdir():
            f.unlink()
        full = Path(tmp) / f"full_{ROWS}"
        started = time.perf_counter()
        gb = write_predictions(full, ROWS)
        written = time.perf_counter() - started
        record = run_arm("streaming", full)
        groups = record["stats"]["sex*region*age_group"]["groups"]
        out["a_full_streaming"] = {
            "rows": ROWS,
            "parquet_gb": round(gb, 2),
            "write_s": round(written, 1),
            "streaming_s": round(record["seconds"], 1),
            "process_s": round(record["process_s"], 1),
            "peak_rss_mb": round(record["peak_rss_mb"]),
            "limit_mb": 4096,
            "under_limit": record["peak_rss_mb"] < 4096,
            "intersectional_groups": len(groups),
            "largest_stated_auc_bound": max(record["stats"]["sex*region*age_group"]["auc_bounds"].values()),
            "n_boot": N_BOOT,
        }
    return out


if __name__ == "__main__":
    arm(*sys.argv[1:4])
