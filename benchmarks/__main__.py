"""Run every benchmark (or those named on the command line) and write benchmarks/results/<name>.json."""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ["scoring"]


def main(names: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        started = time.perf_counter()
        figures = module.run()
        record = {
            "benchmark": name,
            "machine": {
                "cpu_count": torch.get_num_threads(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "cuda": torch.cuda.is_available(),
            },
            "seconds": round(time.perf_counter() - started, 1),
            **figures,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
