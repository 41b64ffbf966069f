"""Privacy runs: degeneracy rule, thresholds from the training split, run tags, LiRA."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch.utils.data import TensorDataset

from auditkit.privacy.lira import lira_attack, lira_scores, logit_confidence
from auditkit.privacy.mia import clopper_pearson
from auditkit.privacy.plan import plan_runs, run_tag
from auditkit.privacy.runs import RunSettings, train_run
from auditkit.privacy.selection import choose_threshold, degenerate_reason, validation_split
from auditkit.progress import SILENT
from auditkit.training import Trainable, TrainingData


def test_constant_and_chance_predictions_are_degenerate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    assert "every test row" in degenerate_reason(y, np.ones(300, dtype=int), 200, rng)
    assert "chance" in degenerate_reason(y, rng.integers(0, 2, 300), 200, rng)
    learned = np.where(rng.random(300) < 0.85, y, 1 - y)
    assert degenerate_reason(y, learned, 200, rng) is None


def test_threshold_from_validation_rescues_an_imbalanced_scorer():
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.75).astype(int)  # 75% positive, as "good" credit
    scores = np.clip(0.7 + 0.2 * y + rng.normal(0, 0.08, 400), 0.51, 1.0)  # useful ranking, all above 0.5
    assert ((scores >= 0.5).astype(int) == 1).all()  # the default threshold predicts one label
    t = choose_threshold(y, scores)
    y_pred = (scores >= t).astype(int)
    fpr, tpr, thresholds = skm.roc_curve(y, scores)
    assert skm.balanced_accuracy_score(y, y_pred) == pytest.approx((tpr - fpr).max() / 2 + 0.5)
    assert degenerate_reason(y, y_pred, 200, rng) is None


def test_validation_split_is_stratified_and_disjoint():
    y = np.array([0] * 30 + [1] * 70)
    fit, val = validation_split(y, 0.2, 0)
    assert len(set(fit) & set(val)) == 0 and len(fit) + len(val) == 100
    assert y[val].mean() == pytest.approx(0.7)


def test_run_tags_stay_stable_for_defaults_and_name_sweeps():
    assert (
        run_tag(8.0) == "eps=8" and run_tag(8, 0.5) == "eps=8,clip=0.5" and run_tag(1, None, 1e-3) == "eps=1,lr=0.001"
    )
    runs = plan_runs([1.0, 8.0], 1.0, [1e-3, 1e-2], [5], [(8.0, 0.5, None), (8.0, None, 3e-3), (8.0, None, None)])
    assert [r.tag for r in runs] == ["eps=1", "eps=8", "eps=8,clip=0.5", "eps=8,lr=0.003"]
    assert runs[2].max_grad_norm == 0.5 and runs[2].learning_rates == (1e-3, 1e-2)
    assert runs[3].learning_rates == (3e-3,) and runs[3].max_grad_norm == 1.0


def test_clopper_pearson_matches_statsmodels_formula():
    from scipy import stats

    low, high = clopper_pearson(3, 40)
    assert low == pytest.approx(stats.beta.ppf(0.025, 3, 38)) and high == pytest.approx(stats.beta.ppf(0.975, 4, 37))
    assert clopper_pearson(0, 40)[0] == 0.0 and clopper_pearson(40, 40)[1] == 1.0


def test_logit_confidence_is_log_odds_of_the_label():
    logits = np.array([[0.0, 2.0], [1.0, -1.0]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([1, 1])
    assert logit_confidence(logits, y) == pytest.approx(np.log(p[:, 1] / p[:, 0]))


def test_lira_scores_separate_in_from_out_gaussians():
    rng = np.random.default_rng(0)
    masks = rng.random((16, 200)) < 0.5
    shadow = np.where(masks, 3.0, 0.0) + rng.normal(0, 0.5, masks.shape)
    target_in = 3.0 + rng.normal(0, 0.5, 200)
    target_out = rng.normal(0, 0.5, 200)
    assert (lira_scores(target_in, shadow, masks) > lira_scores(target_out, shadow, masks)).mean() > 0.99


# --- LiRA against real trained models ----------------------------------------------------------

N_FEATURES = 256  # wide random inputs: held-out rows look like none of the training rows


def tiny_trainable(x: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: int = 0) -> Trainable:
    torch.manual_seed(seed)
    template = torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def data(r: np.ndarray) -> TrainingData:
        return TrainingData(TensorDataset(torch.as_tensor(x[r], dtype=torch.float32), torch.as_tensor(y[r])), _collate)

    import copy

    return Trainable(lambda: copy.deepcopy(template), data(rows), data(np.arange(len(y))), "tiny MLP")


def _collate(items):
    if not items:
        return torch.zeros((0, N_FEATURES)), torch.zeros(0, dtype=torch.long)
    return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items]).long()


def attack(epsilon: float | None, epochs: int, lr: float, batch: int, n: int = 48, shadows: int = 8):
    """Population of 2n random-label rows; the target trains on the first n; shadows as the target."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * n, N_FEATURES)).astype(np.float32)
    y = rng.integers(0, 2, 2 * n)
    settings = RunSettings(epochs, lr, batch, 1.0, 1e-3, "rdp", batch, "ew", 0)
    cpu = torch.device("cpu")

    def run(rows: np.ndarray, seed: int = 0):
        return train_run(tiny_trainable(x, y, rows), replace(settings, seed=seed), epsilon, cpu, SILENT)

    target = run(np.arange(n))
    is_member = np.arange(2 * n) < n
    result = lira_attack(
        target.test.logits, y, is_member, n, lambda rows, i: run(rows, 1 + i).test.logits, shadows, 1e-3, rng
    )
    return result, target


@pytest.mark.slow  # 9 trained models (~1 min on a loaded 2-core machine)
def test_lira_finds_a_memorising_model():
    result, target = attack(None, epochs=60, lr=3e-2, batch=64)  # one full batch per epoch
    assert target.losses[-1] < 0.05  # trained to (near) zero loss on random labels: memorised
    assert result.tpr_at_fpr["0.001"] > 0.2  # far above the 0.1% a blind guess gets at 0.1% FPR
    low, high = result.tpr_at_fpr_ci["0.001"]
    assert low > 0.001 and low <= result.tpr_at_fpr["0.001"] <= high
    assert result.epsilon_lower_bound > 0.5 and result.method.startswith("LiRA")


@pytest.mark.slow  # 9 DP-trained models
def test_lira_stays_within_the_accounted_epsilon_under_dp():
    result, target = attack(1.0, epochs=5, lr=3e-2, batch=24)
    assert target.epsilon <= 1.0 * 1.01
    assert result.epsilon_lower_bound <= target.epsilon
    assert abs(result.auc - 0.5) < 0.2
