"""The privacy study through an executor: every run in one map call, every LiRA shadow in another,
and on Ray the same numbers as in process."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import auditkit.runner as runner
from auditkit.execution import InProcessExecutor
from auditkit.privacy.runs import RunTask
from tests.test_privacy import tabular_privacy_config

SHADOWS = 2
# A small sample rate (batch 16 of 96 rows) keeps Opacus' noise search, the slow part here, quick.
STUDY = {"epsilons": [1.0, 4.0], "epochs": 2, "learning_rate": [1e-3, 3e-3], "lira_shadows": SHADOWS, "batch_size": 16}


class Recording(InProcessExecutor):
    """In process, keeping every map call's function, items and results."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, list, bool, list]] = []

    def map(self, fn, items, *, gpu=False):
        results = super().map(fn, items, gpu=gpu)
        self.calls.append((fn, list(items), gpu, results))
        return results


def test_every_run_trains_in_one_map_call_and_every_shadow_in_another(tmp_path, monkeypatch):
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    recording = Recording()
    monkeypatch.setattr(runner, "open_executor", lambda settings: recording)
    result, _ = runner.run_audit(tabular_privacy_config(tmp_path, **STUDY), out=tmp_path / "out")
    privacy = result.auditors["privacy"]
    calls = [call for call in recording.calls if isinstance(call[0], RunTask)]
    assert len(calls) == 2
    (run_task, runs, gpu, outcomes), (shadow_task, shadows, _, shadow_outcomes) = calls
    assert gpu is False  # the adapter is on the CPU
    rates = STUDY["learning_rate"]
    assert [(j.target_epsilon, j.settings.learning_rate) for j in runs] == [
        (epsilon, lr) for epsilon in (None, *STUDY["epsilons"]) for lr in rates
    ]
    assert all(j.shadow_rows is None and j.settings.seed == 0 for j in runs)
    assert run_task.validation is not None and shadow_task.population is not None
    # Every run that learned something is attacked, each by its own shadows, trained as it was.
    attacked = [r for r in (privacy.non_private, *privacy.runs) if r.lira is not None]
    assert attacked and len(attacked) == sum(r.attack_reason is None for r in (privacy.non_private, *privacy.runs))
    assert len(shadows) == SHADOWS * len(attacked)
    expected = [(r.target_epsilon, r.learning_rate, r.epochs, 1 + i) for r in attacked for i in range(SHADOWS)]
    assert [
        (j.target_epsilon, j.settings.learning_rate, j.settings.epochs, j.settings.seed) for j in shadows
    ] == expected
    assert all(len(j.shadow_rows) == privacy.n_fit for j in shadows)
    # A task travels without the progress reporter and, alone, gives what it gave in the sweep:
    # its data and seed come with it, nothing from a global counter or the calls before it.
    for task, job, outcome in ((run_task, runs[-1], outcomes[-1]), (shadow_task, shadows[-1], shadow_outcomes[-1])):
        copy = cloudpickle.loads(cloudpickle.dumps(task))
        assert copy.progress is None
        alone = copy(cloudpickle.loads(cloudpickle.dumps(job)))
        np.testing.assert_array_equal(alone.test.logits, outcome.test.logits)
        assert alone.epsilon == outcome.epsilon


def _meet(folder) -> tuple[dict, bool]:
    """Leaves a mark and waits for the other task's: True only if both ran at the same time."""
    import ray

    (folder / str(ray.get_runtime_context().get_task_id())).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return ray.get_runtime_context().get_assigned_resources(), len(list(folder.iterdir())) == 2


def test_ray_runs_each_task_on_its_own_cpu_two_at_once(ray_executor, tmp_path):
    assert ray_executor.map(_meet, [tmp_path, tmp_path]) == [({"CPU": 1.0}, True)] * 2


def _privacy(folder) -> dict:
    privacy = json.loads((folder / "summary.json").read_text())["auditors"]["privacy"]
    for run in [privacy["non_private"], *privacy["runs"]]:
        run.pop("seconds")
    return privacy


@pytest.mark.slow  # 8 DP runs twice, a Ray start: ~65 s on a loaded 2-core machine (test_execution: one epsilon)
def test_the_study_on_ray_equals_the_study_in_process(ray_executor, tmp_path):
    config = tabular_privacy_config(tmp_path, **STUDY)
    runner.run_audit(config, out=tmp_path / "local")  # builds the model once
    runner.run_audit(config, out=tmp_path / "ray", ray="local")  # joins the running one-node Ray
    on_ray, local = _privacy(tmp_path / "ray"), _privacy(tmp_path / "local")
    runs = [local["non_private"], *local["runs"]]
    assert all(r["mia"] and r["lira"] for r in runs)  # every run attacked: the comparison covers LiRA
    assert [r["epsilon"] for r in on_ray["runs"]] == [r["epsilon"] for r in local["runs"]]
    assert on_ray == local  # epsilons, metrics, loss attack and LiRA: equal to the last digit
