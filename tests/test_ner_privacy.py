"""Token DP runs through the shared Opacus loop: a sentence is one example (per-sentence gradients and
loss), Opacus' accountants, the run kinds, the validation grid, LiRA and the loss attack per sentence,
and the same numbers on Ray as in process."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants import PRVAccountant, RDPAccountant
from scipy.special import log_softmax

from auditkit.adapters.capabilities import RetrainRequest
from auditkit.auditors.base import AuditContext
from auditkit.config_file import load_config
from auditkit.execution import InProcessExecutor
from auditkit.ner.auditors import TokenPrivacyAuditor
from auditkit.ner.metrics import count_entities, entity_report
from auditkit.ner.privacy import EntityF1, SentenceLoss, run_tags
from auditkit.ner.privacy_audit import metric_ids
from auditkit.ner.wordpieces import label_set
from auditkit.privacy.lira import logit_confidence
from auditkit.privacy.runs import RunSettings, RunTask, accounted_epsilons, train_run
from auditkit.progress import SILENT
from auditkit.runner import prepare
from auditkit.training import IGNORE, UNKNOWN, Outputs
from tests.conftest import write_config
from tests.ner_support import make_sentences, make_tiny_token_bert, vocabulary_texts, write_jsonl

CPU = torch.device("cpu")
LABELS = ["O", "B-location", "B-person"]
STUDY = {"epsilons": [3.0], "epochs": [1, 4], "learning_rate": [0.01, 0.05], "lira_shadows": 2, "run_kind": "probe"}


def _config(folder, **privacy):
    settings = {"epsilons": [3.0], "epochs": 2, "batch_size": 32, "learning_rate": 0.03, "n_boot": 100}
    settings.update(base=str(folder / "base"), **privacy)
    config = {
        "name": "tiny_ner_dp",
        "seed": 0,
        "data": {"task": "token-classification", "path": "data.jsonl", "id_column": "sid", "split": {"test_size": 0.3}},
        "model": {"adapter": "hf-token", "path": "base", "max_length": 64, "batch_size": 32},
        "auditors": {"privacy": settings},
        "gates": [],
    }
    return load_config(write_config(folder, config, name=f"audit_{len(list(folder.glob('*.yaml')))}.yaml"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner_dp")
    make_tiny_token_bert(folder / "base", vocabulary_texts(), LABELS)
    write_jsonl(folder / "data.jsonl", make_sentences(200, seed=3))
    return folder


@pytest.fixture(scope="module")
def prepared(folder):
    config = _config(folder)
    return config, prepare(config, SILENT)


def _trainable(prepared, kind: str, **request):
    config, p = prepared
    labels = label_set(p.data.train.tags)
    ask = RetrainRequest(seed=0, base=config.auditors.privacy.base, kind=kind, labels=tuple(labels), **request)
    return p.adapter.trainable(p.data, ask, SILENT), labels


def test_a_lora_token_run_is_accounted_as_opacus(prepared):
    trainable, _ = _trainable(prepared, "lora", lora_rank=4)
    assert trainable.description.startswith("LoRA rank 4") and "token-classification head" in trainable.description
    settings = RunSettings(1, 1e-2, 32, 1.0, 1e-3, "rdp", 32, "ew", 0)
    outcome = train_run(trainable, settings, 3.0, CPU, SILENT)
    history = [(outcome.noise_multiplier, outcome.sample_rate, outcome.steps)]
    for name, independent in (("rdp", RDPAccountant()), ("prv", PRVAccountant())):  # both, from what was recorded
        independent.history = list(history)
        assert outcome.epsilons[name] == pytest.approx(independent.get_epsilon(1e-3), rel=1e-6)
    assert outcome.epsilon == outcome.epsilons["rdp"] and outcome.epsilon == pytest.approx(3.0, rel=0.05)
    assert outcome.steps > 0 and outcome.noise_multiplier > 0 and 0.0 <= outcome.clipped_share <= 1.0
    test = prepared[1].data.test
    assert outcome.test.n_examples == len(test)  # one example per sentence, one unit per word
    assert len(outcome.test.labels) == sum(len(s) for s in test.tokens)


def test_per_sample_gradients_are_per_sentence(prepared):
    trainable, _ = _trainable(prepared, "lora", lora_rank=4)
    torch.manual_seed(0)
    module = trainable.fresh()
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    for name, p in module.named_parameters():
        if "lora_b" in name:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero; make A's gradients non-trivial
    ids, mask, labels = next(iter(trainable.train.loader(4, seed=0)))
    assert (labels != IGNORE).sum(dim=1).min() >= 2  # several words per sentence: the sentence is the unit
    loss = SentenceLoss()
    expected = []
    for i in range(len(ids)):
        module.zero_grad()
        loss(module(ids[i : i + 1], mask[i : i + 1]), labels[i : i + 1]).backward()
        expected.append({n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModule(module, batch_first=True, loss_reduction="sum")
        loss.reduction = "none"
        loss(wrapped(ids, mask), labels).sum().backward()
    for name, p in module.named_parameters():
        if p.requires_grad:
            for i in range(len(ids)):
                torch.testing.assert_close(p.grad_sample[i], expected[i][name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("kind", "lr", "epochs"), [("probe", 3e-2, 20), ("top_layers", 1e-2, 8)])
def test_probe_and_top_layer_runs_learn_entities(prepared, kind, lr, epochs):
    trainable, labels = _trainable(prepared, kind, top_layers=1)
    expected = "on the frozen encoder on cached activations" if kind == "probe" else "top 1 of 2 layers"
    assert expected in trainable.description
    outcome = train_run(trainable, RunSettings(epochs, lr, 32, 1.0, 1e-3, "rdp", 32, "ew", 0), None, CPU, SILENT)
    test = prepared[1].data.test
    tags = run_tags(outcome.test, labels, [len(s) for s in test.tokens])
    report = entity_report(count_entities(test.tags, tags), 100, 0.95, 0)
    assert report["metrics"]["f1"] > 0.3
    assert EntityF1(tuple(labels))(outcome.test) == pytest.approx(report["metrics"]["f1"], abs=1e-12)


def test_a_sentence_statistic_is_the_mean_over_its_labelled_words():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3))
    outputs = Outputs(logits, np.array([0, 2, UNKNOWN, 1, 1]), np.array([0, 0, 0, 1, 1]), 2)
    log_p = log_softmax(logits, axis=1)
    expected = np.array([(log_p[0, 0] + log_p[1, 2]) / 2, (log_p[3, 1] + log_p[4, 1]) / 2])
    np.testing.assert_allclose(outputs.log_likelihood(), expected, rtol=1e-12)
    p = np.exp(expected)
    np.testing.assert_allclose(outputs.confidence(), np.log(p / (1 - p)), rtol=1e-10)
    # The per-sentence training loss is the same statistic, negated.
    batch = torch.zeros((2, 4, 3), dtype=torch.float64)
    batch[0, :3], batch[1, :2] = torch.from_numpy(logits[:3]), torch.from_numpy(logits[3:])
    labels = torch.tensor([[0, 2, UNKNOWN, IGNORE], [1, 1, IGNORE, IGNORE]])
    loss = SentenceLoss()
    loss.reduction = "none"
    np.testing.assert_allclose(loss(batch, labels).numpy(), -expected, rtol=1e-6)
    # One unit per example: the row's logit-scaled confidence, as LiRA has it for a classifier.
    rows = Outputs(logits, np.array([0, 2, 1, 1, 0]), np.arange(5), 5)
    np.testing.assert_allclose(rows.confidence(), logit_confidence(logits, rows.labels), rtol=1e-12)


class Recording(InProcessExecutor):
    """In process, keeping every map call's function, items and results."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, list, list]] = []

    def map(self, fn, items, *, gpu=False):
        results = super().map(fn, items, gpu=gpu)
        self.calls.append((fn, list(items), results))
        return results


def _audit(folder, executor, **privacy):
    config = _config(folder, **privacy)
    p = prepare(config, SILENT)
    context = AuditContext(config, p.data, p.adapter, SILENT, executor)
    return config, TokenPrivacyAuditor(config.auditors.privacy).run(context)


@pytest.fixture(scope="module")
def study(folder):
    executor = Recording()
    config, result = _audit(folder, executor, **STUDY)
    return config, result, executor.calls


def test_each_run_takes_the_grid_point_with_the_best_validation_entity_f1(study):
    config, result, calls = study
    (task, jobs, outcomes), *_ = [c for c in calls if isinstance(c[0], RunTask)]
    grid = [(lr, e) for lr in STUDY["learning_rate"] for e in STUDY["epochs"]]
    assert [(j.target_epsilon, j.settings.learning_rate, j.settings.epochs) for j in jobs] == [
        (None, lr, max(STUDY["epochs"])) for lr in STUDY["learning_rate"]
    ] + [(3.0, lr, e) for lr, e in grid]
    score = task.trainable.score
    assert isinstance(score, EntityF1)
    for run, owned in ((result.non_private, range(2)), (result.runs[0], range(2, 6))):
        scores = [score(outcomes[i].validation) for i in owned]
        best = int(np.argmax(scores))  # the first of equals
        assert run["validation_score"] == scores[best]
        assert (run["learning_rate"], run["epochs"]) == (
            jobs[owned[best]].settings.learning_rate,
            outcomes[owned[best]].epochs,
        )
    assert len({round(score(outcomes[i].validation), 9) for i in range(2, 6)}) > 1  # the grid made a difference
    assert result.n_fit + result.n_validation == 140 and result.run_kind == "probe"


def test_token_runs_report_accounting_clipping_and_both_attacks(study):
    config, result, calls = study
    run = result.runs[0]
    assert run["epsilons"] == accounted_epsilons(
        run["noise_multiplier"], run["sample_rate"], run["steps"], result.delta
    )
    assert run["epsilon"] == run["epsilons"]["rdp"] and 0.0 <= run["clipped_share"] <= 1.0
    attacked = [r for r in (result.non_private, *result.runs) if r["mia"] is not None]
    assert attacked and all(
        r["lira"]["method"].startswith("LiRA") and "2 shadows" in r["lira"]["method"] for r in attacked
    )
    shadows = [c for c in calls if isinstance(c[0], RunTask)][1]
    assert len(shadows[1]) == 2 * len(attacked)
    assert all(len(j.shadow_rows) == result.n_fit for j in shadows[1])
    values = result.metric_values()
    assert set(values) == metric_ids(config.auditors.privacy, [])
    assert values["mia_auc[eps=3]"].value == run["mia"]["auc"]


def test_a_sweep_entry_is_a_run_with_its_own_gate_ids(folder):
    sweep = [{"epsilon": 3.0, "max_grad_norm": 0.5}]
    config, result = _audit(folder, InProcessExecutor(), epochs=1, lira_shadows=0, run_kind="probe", sweep=sweep)
    assert [r["tag"] for r in result.runs] == ["eps=3", "eps=3,clip=0.5"]
    assert result.runs[1]["max_grad_norm"] == 0.5 and result.runs[1]["lira"] is None
    assert "entity_f1[eps=3,clip=0.5]" in result.metric_values()
    assert set(result.metric_values()) == metric_ids(config.auditors.privacy, [])


def _comparable(result) -> dict:
    out = result.model_dump(mode="json")
    for run in [out["non_private"], *out["runs"]]:
        run.pop("seconds")
    return out


@pytest.mark.slow  # a Ray start and every run twice (~40 s on a loaded 2-core machine)
def test_token_runs_on_ray_equal_the_runs_in_process(folder, ray_executor):
    settings = {"epochs": 2, "learning_rate": 0.05, "lira_shadows": 2, "run_kind": "lora", "lora_rank": 4}
    _, local = _audit(folder, InProcessExecutor(), **settings)
    _, on_ray = _audit(folder, ray_executor, **settings)
    assert local.non_private["lira"] is not None  # the comparison covers LiRA
    assert _comparable(on_ray) == _comparable(local)
