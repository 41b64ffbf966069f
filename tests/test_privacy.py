"""Privacy auditor: Opacus accounting, membership inference, fairness through the shared code path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from opacus.accountants import PRVAccountant, RDPAccountant
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.privacy.mia import clopper_pearson_upper, epsilon_bound, loss_attack
from tests.conftest import base_config, make_credit_frame, write_config


def tabular_privacy_config(tmp_path, n_rows=240, random_labels=False, **privacy):
    frame = make_credit_frame(n=n_rows, seed=5)
    if random_labels:  # nothing to learn: all a model can do is memorise its training rows
        frame["risk"] = np.random.default_rng(1).choice(["good", "bad"], n_rows)
    frame.to_csv(tmp_path / "data.csv", index=False)
    config = base_config("data.csv", "model")
    del config["data"]["text"]
    config["data"]["split"] = {"test_size": 0.5}
    config["model"] = {
        "adapter": "torch-tabular",
        "path": "model",
        "build": {
            "epochs": 5,
            "hidden_sizes": [64, 64],
            "dropout": 0.0,
            "features": ["age", "amount", "purpose", "sex"],
        },
    }
    settings = {"epsilons": [1.0], "epochs": 5, "n_boot": 100, "min_group_size": 10, "lira_shadows": 0}
    config["auditors"] = {"privacy": {**settings, **privacy}}
    config["gates"] = []
    write_config(tmp_path, config)
    return tmp_path / "audit.yaml"


def run_privacy(path, whole=False):
    out = path.parent / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    return summary if whole else summary["auditors"]["privacy"]


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_reported_epsilon_equals_opacus_accountant(tmp_path, accountant):
    privacy = run_privacy(tabular_privacy_config(tmp_path, epsilons=[1.0, 4.0], accountant=accountant))
    for run in privacy["runs"]:
        reference = RDPAccountant() if accountant == "rdp" else PRVAccountant()
        reference.history = [(run["noise_multiplier"], run["sample_rate"], run["steps"])]
        assert run["epsilon"] == pytest.approx(reference.get_epsilon(run["delta"]), rel=1e-6)
        assert run["epsilon"] <= run["target_epsilon"] * 1.01
        assert run["accountant"] == accountant and run["max_grad_norm"] == 1.0
        assert run["delta"] < 1 / 120  # default delta sits below 1/N
        assert run["noise_multiplier"] > 0 and 0 < run["sample_rate"] < 1
        # both accountants, each recomputed independently from the run's (noise, sample rate, steps)
        for name, cls in (("rdp", RDPAccountant), ("prv", PRVAccountant)):
            other = cls()
            other.history = [(run["noise_multiplier"], run["sample_rate"], run["steps"])]
            assert run["epsilons"][name] == pytest.approx(other.get_epsilon(run["delta"]), rel=1e-6)
        assert 0.0 <= run["clipped_share"] <= 1.0
    assert privacy["runs"][0]["noise_multiplier"] > privacy["runs"][1]["noise_multiplier"]


def test_memorising_model_leaks_more_than_dp_at_epsilon_1(tmp_path):
    # Random labels, tiny data, a wide MLP, many epochs: the reference memorises its training rows.
    privacy = run_privacy(
        tabular_privacy_config(
            tmp_path,
            n_rows=160,
            random_labels=True,
            epochs=150,
            learning_rate=0.01,
            batch_size=16,
            max_physical_batch_size=16,
        )
    )
    memorised, private = privacy["non_private"]["mia"], privacy["runs"][0]["mia"]
    assert memorised["auc"] > 0.75 and abs(private["auc"] - 0.5) < memorised["auc"] - 0.5
    assert memorised["epsilon_lower_bound"] > private["epsilon_lower_bound"]
    assert private["epsilon_lower_bound"] <= privacy["runs"][0]["epsilon"]  # the bound respects the accounting
    assert memorised["epsilon_lower_bound"] <= memorised["epsilon_lower_bound_ceiling"]
    assert not [f for f in privacy["runs"][0]["flags"] if "exceeds" in f]


def test_a_degenerate_reference_makes_every_derived_gate_inconclusive(tmp_path):
    # Random labels: no run can beat chance on the test split, so nothing derived from the runs is a finding.
    path = tabular_privacy_config(tmp_path, random_labels=True, epochs=2)
    config = yaml.safe_load(path.read_text())
    config["gates"] = [
        {"metric": "privacy.accuracy_drop_gap[sex@eps=1]", "op": "<=", "threshold": 0.1, "on_inconclusive": "warn"},
        {"metric": "privacy.demographic_parity_ratio_change[sex@eps=1]", "op": ">=", "threshold": -0.2},
    ]
    path.write_text(yaml.safe_dump(config))
    summary = run_privacy(path, whole=True)
    privacy = summary["auditors"]["privacy"]
    assert privacy["non_private"]["degenerate"]
    assert any(f.startswith("degenerate") for f in privacy["non_private"]["flags"])
    cost = privacy["runs"][0]["fairness_cost"]["sex"]
    assert cost["accuracy_drop_gap"] is None and "reference run is degenerate" in cost["accuracy_drop_gap_reason"]
    for gate in summary["gates"]:
        assert gate["status"] == "inconclusive" and "degenerate" in gate["reason"]


def test_per_group_metrics_come_from_the_fairness_code(tmp_path, monkeypatch):
    import auditkit.privacy.study as module
    from auditkit.stats import groups

    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return groups.group_metrics(*args, **kwargs)

    monkeypatch.setattr(module, "group_metrics", spy)
    privacy = run_privacy(tabular_privacy_config(tmp_path))
    assert len(calls) == 2  # the reference and the one private run
    y_true, y_pred = calls[-1][0], calls[-1][1]
    by_group = privacy["runs"][-1]["by_group"]["sex"]
    sex = calls[-1][3]["sex"].astype(str).to_numpy()
    for group, values in by_group.items():
        mask = sex == group
        assert values["accuracy"] == pytest.approx((y_true[mask] == y_pred[mask]).mean(), abs=1e-12)
    cost = privacy["runs"][-1]["fairness_cost"]["sex"]
    assert "demographic_parity_ratio_change" in cost and "accuracy_drop_gap" in cost


def test_loss_attack_on_separated_losses():
    rng = np.random.default_rng(0)
    members = rng.exponential(0.05, 500)
    nonmembers = rng.exponential(1.0, 500)
    strong = loss_attack(members, nonmembers, 1e-5)
    weak = loss_attack(rng.exponential(1.0, 500), nonmembers, 1e-5)
    assert strong.auc > 0.9 and abs(weak.auc - 0.5) < 0.06
    assert strong.epsilon_lower_bound > weak.epsilon_lower_bound
    assert 0 < strong.epsilon_lower_bound <= strong.epsilon_lower_bound_ceiling
    assert strong.tpr_at_fpr["0.01"] >= strong.tpr_at_fpr["0.001"]


def test_clopper_pearson_and_ceiling_formula():
    from scipy import stats

    assert clopper_pearson_upper(np.array([0]), 100)[0] == pytest.approx(1 - 0.025 ** (1 / 100))
    assert clopper_pearson_upper(np.array([7]), 100)[0] == pytest.approx(stats.beta.ppf(0.975, 8, 93))
    fpr = fnr = clopper_pearson_upper(np.array([0]), 500)
    assert epsilon_bound(fpr, fnr, 1e-5)[0] == pytest.approx(np.log((1 - 1e-5 - fnr[0]) / fpr[0]))


def test_freed_memory_is_kept_on_glibc():
    import platform

    from auditkit.privacy.allocator import keep_freed_memory

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
    assert keep_freed_memory() is expected  # once per process; calling again changes nothing
