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
BENCHMARKS = ["scoring", "fairness", "explain", "privacy", "scale", "ray"]


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
        text = json.dumps(record, indent=2, default=_plain)
        (RESULTS / f"{name}.json").write_text(text + "\n")
        print(text)


def _plain(value: object) -> object:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


if __name__ == "__main__":
    main(sys.argv[1:])
