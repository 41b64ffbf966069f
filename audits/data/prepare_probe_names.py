"""Build ``probe_names.csv``: first names by sex and by race/ethnicity for the NER name probe.

Sources (see README.md): the 1990 US Census first-name lists (``source/dist.male.first``,
``source/dist.female.first``) and the Rosenman, Olivella & Imai (2023) P(race | first name) table,
cut to the names of the 1990 lists (``source/rosenman_first_name_race_1990_names.csv``).
Deterministic: the test suite checks the committed CSV equals this script's output.

    python audits/data/prepare_probe_names.py
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
PER_GROUP = 40
SEX_SHARE = 0.95  # a name joins a sex group when >= 95% of its 1990 bearers had that sex
RACE_SHARE = 0.70  # and a race/ethnicity group when >= 70% of its voter-file bearers were in it
RACES = ("white", "black", "hispanic", "asian")
# Names that are also common English words: the probe would test word sense, not names.
WORDS = {
    "YOUNG",
    "SUN",
    "MAN",
    "LONG",
    "SON",
    "SOON",
    "HUNG",
    "MI",
    "CHI",
    "HONG",
    "LAN",
    "HAI",
    "KIM",
    "WILL",
    "IN",
    "MY",
    "HA",
    "CHIN",
    "DUNG",
    "MAY",
    "JUNE",
    "APRIL",
    "HOPE",
    "JOY",
    "GRACE",
    "ROSE",
    "MARK",
    "BILL",
    "ART",
    "SO",
    "AN",
    "TRUE",
    "OK",
}


def read_dist(path: Path) -> dict[str, float]:
    """Census 1990 file: NAME, percent frequency, cumulative percent, rank."""
    out = {}
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = float(parts[1])
    return out


def main() -> None:
    male = read_dist(HERE / "source" / "dist.male.first")
    female = read_dist(HERE / "source" / "dist.female.first")
    with open(HERE / "source" / "rosenman_first_name_race_1990_names.csv", encoding="utf-8") as handle:
        race = {row["name"]: {r: float(row[r]) for r in RACES} for row in csv.DictReader(handle)}
    frequency = {n: male.get(n, 0.0) + female.get(n, 0.0) for n in set(male) | set(female)}
    ranked = sorted((n for n in frequency if n not in WORDS and len(n) > 1), key=lambda n: (-frequency[n], n))
    rows: dict[str, dict[str, str]] = {}
    for sex, table in (("male", male), ("female", female)):
        chosen = [n for n in ranked if table.get(n, 0.0) / frequency[n] >= SEX_SHARE][:PER_GROUP]
        for n in chosen:
            rows.setdefault(n, {})["sex"] = sex
    for group in RACES:
        chosen = [n for n in ranked if n in race and race[n][group] >= RACE_SHARE][:PER_GROUP]
        for n in chosen:
            rows.setdefault(n, {})["race_ethnicity"] = group
    with open(HERE / "probe_names.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["name", "sex", "race_ethnicity", "census_1990_percent"])
        for n in sorted(rows, key=lambda n: (-frequency[n], n)):
            writer.writerow(
                [n.capitalize(), rows[n].get("sex", ""), rows[n].get("race_ethnicity", ""), f"{frequency[n]:.3f}"]
            )


if __name__ == "__main__":
    main()
