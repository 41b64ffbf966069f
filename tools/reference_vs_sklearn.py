"""The credit demo's non-private probe reference next to scikit-learn's logistic regression on the
same cached, mean-pooled base-encoder features and the same rows (issue 12: the reference must reach
what a plain fit of the same trainable part reaches). Run after `make demo`:

    .venv/bin/python tools/reference_vs_sklearn.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from auditkit.auditors.privacy import request
from auditkit.config_file import load_config
from auditkit.privacy.selection import validation_split
from auditkit.progress import SILENT
from auditkit.runner import prepare

ROOT = Path(__file__).resolve().parents[1]


def pooled(data) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the unmasked positions of each cached example, as the probe pools them."""
    xs, ys = [], []
    for i in range(len(data.dataset)):
        states, mask, *_, label = data.dataset[i]
        weight = mask.float().unsqueeze(-1)
        xs.append(((states * weight).sum(0) / weight.sum()).numpy())
        ys.append(int(label))
    return np.array(xs), np.array(ys)


def main() -> None:
    config = load_config(ROOT / "audits" / "credit_risk.yaml")
    prepared = prepare(config, SILENT)
    settings = config.auditors.privacy
    trainable = prepared.adapter.trainable(prepared.data, request(settings, config.seed), SILENT)
    x_train, y_train = pooled(trainable.train)
    x_test, y_test = pooled(trainable.test)
    fit, _ = validation_split(prepared.data.train.y, settings.validation_share, config.seed)
    model = LogisticRegression(max_iter=5000, class_weight="balanced").fit(x_train[fit], y_train[fit])
    summary = json.loads((ROOT / "reports" / "credit_risk" / "summary.json").read_text())
    reference = summary["auditors"]["privacy"]["non_private"]["metrics"]
    print(f"{'':34}{'balanced accuracy':>18}{'ROC AUC':>10}")
    print(
        f"{'scikit-learn LR (balanced weights)':34}"
        f"{balanced_accuracy_score(y_test, model.predict(x_test)):>18.3f}"
        f"{roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]):>10.3f}"
    )
    print(f"{'auditkit non-private reference':34}{reference['balanced_accuracy']:>18.3f}{reference['roc_auc']:>10.3f}")


if __name__ == "__main__":
    main()
