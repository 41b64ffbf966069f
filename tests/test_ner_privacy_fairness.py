"""The fairness cost of privacy for token classifiers: the name probe per DP run, recomputed by hand
from each run's head; the paired change from the reference; a degenerate run's nulls and gates."""

from __future__ import annotations

import csv
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities
from transformers import AutoModel, AutoTokenizer

import auditkit.privacy.runs as runs
from auditkit.adapters.hf_token import HfTokenAdapter
from auditkit.auditors.base import AuditContext
from auditkit.config_file import load_config
from auditkit.execution import InProcessExecutor
from auditkit.gates import evaluate_gates
from auditkit.ner.auditors import TokenPrivacyAuditor
from auditkit.ner.privacy_fairness import degenerate_reason
from auditkit.ner.probe import ProbeSet, Template, probe_report, recall_changes
from auditkit.privacy.selection import why_inconclusive
from auditkit.progress import SILENT
from auditkit.runner import prepare
from tests.conftest import write_config
from tests.ner_support import GROUP_A, GROUP_B, make_sentences, make_tiny_token_bert, vocabulary_texts, write_jsonl

LABELS = ["O", "B-location", "I-location", "B-person", "I-person"]
N_TEMPLATES = 6
FORCED = 8.0  # the run whose head is forced to tag every word O


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner_dp_fairness")
    base = make_tiny_token_bert(folder / "base", vocabulary_texts(), LABELS)
    write_jsonl(folder / "data.jsonl", make_sentences(240, seed=0))
    rows = "".join(f"{a},a\n{b},b\n" for a, b in zip(GROUP_A, GROUP_B, strict=True))
    (folder / "names.csv").write_text("name,origin\n" + rows, encoding="utf-8")
    probe = {"names": "names.csv", "group_column": "origin", "min_names": 10, "n_templates": N_TEMPLATES}
    config = {
        "name": "tiny_ner_dp",
        "seed": 0,
        "data": {
            "task": "token-classification",
            "path": "data.jsonl",
            "id_column": "sid",
            "sensitive_features": ["origin"],
            "split": {"test_size": 0.3},
        },
        "model": {"adapter": "hf-token", "path": "base", "max_length": 64, "batch_size": 32},
        "auditors": {
            "fairness": {"n_boot": 200, "min_group_size": 20, "name_probes": {"origin": probe}},
            "privacy": {
                "epsilons": [3.0, FORCED],
                "epochs": 20,
                "batch_size": 32,
                "learning_rate": 0.03,
                "n_boot": 200,
                "base": str(base),
                "run_kind": "probe",
                "lira_shadows": 0,
            },
        },
        "gates": [  # ids the config accepts: privacy's name-probe gates follow fairness.name_recall_ratio[origin]
            {"metric": f"privacy.name_recall_ratio[origin@eps={FORCED:g}]", "op": ">=", "threshold": 0.8},
            {"metric": f"privacy.name_recall_ratio_change[origin@eps={FORCED:g}]", "op": ">=", "threshold": -0.1},
            {"metric": "privacy.name_recall_difference_change[origin@eps=3]", "op": "<=", "threshold": 0.1},
        ],
    }
    config = load_config(write_config(folder, config))
    prepared = prepare(config, SILENT)
    modules: list[torch.nn.Module] = []  # every run's module, in the order the runs train (in process)
    trainable_of = HfTokenAdapter.trainable
    outputs_of = runs.outputs_of

    def recording(self, data, request, progress):
        trainable = trainable_of(self, data, request, progress)

        def fresh():
            modules.append(trainable.fresh())
            return modules[-1]

        return replace(trainable, fresh=fresh)

    def forcing(model, data, device, batch_size=128):
        """The run at FORCED (the third to train) has its head forced to tag every word O."""
        if len(modules) == 3 and model is modules[2] and not getattr(model, "forced", False):
            with torch.no_grad():
                model.head[1].weight.zero_()
                model.head[1].bias.copy_(torch.tensor([5.0 if t == "O" else 0.0 for t in LABELS]))
            model.forced = True
        return outputs_of(model, data, device, batch_size)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HfTokenAdapter, "trainable", recording)
        patch.setattr(runs, "outputs_of", forcing)
        executor = RecordingExecutor()
        context = AuditContext(config, prepared.data, prepared.adapter, SILENT, executor)
        result = TokenPrivacyAuditor(config.auditors.privacy).run(context)
    heads = dict(zip([None, 3.0, FORCED], modules, strict=True))
    return folder, config, result, heads, executor.calls


class RecordingExecutor(InProcessExecutor):
    """In process, noting what each map call was given."""

    def __init__(self) -> None:
        self.calls: list[list] = []

    def map(self, fn, items, *, gpu=False):
        self.calls.append(list(items))  # the RunJobs of one call
        return super().map(fn, items, gpu=gpu)


def test_every_token_run_and_the_reference_train_in_one_executor_call(audited):
    *_, calls = audited
    assert [[job.target_epsilon for job in jobs] for jobs in calls] == [[None, 3.0, FORCED]]  # all at once


def _probe_by_hand(folder, heads: dict) -> dict:
    """Per run and group, the share of (name, template) sentences whose only person chunk at the slot is the
    name, tagged by the run's head on the base encoder's states (each sentence encoded once for every run)."""
    with open(folder / "names.csv", encoding="utf-8") as handle:
        names = [(r["name"], r["origin"]) for r in csv.DictReader(handle)]
    text = resources.files("auditkit.ner").joinpath("resources", "name_templates.txt").read_text(encoding="utf-8")
    templates = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    templates = templates[:N_TEMPLATES]
    encoder = AutoModel.from_pretrained(folder / "base", use_safetensors=True, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "base", local_files_only=True)
    hits: dict = {eps: {} for eps in heads}
    for head in heads.values():
        head.eval()
    for name, group in names:
        for template in templates:
            words = [name if w == "{name}" else w for w in template]
            encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt")
            first: dict[int, int] = {}
            for position, word in enumerate(encoded.word_ids()):
                if word is not None:
                    first.setdefault(word, position)
            with torch.no_grad():
                states = encoder(**encoded).last_hidden_state
                for eps, head in heads.items():
                    logits = head(states, encoded["attention_mask"])[0]
                    tags = [LABELS[int(logits[first[w]].argmax())] for w in range(len(words))]
                    slot = template.index("{name}")
                    hits[eps].setdefault(group, []).append(("person", slot, slot) in get_entities(tags))
    return {eps: {group: float(np.mean(h)) for group, h in by_group.items()} for eps, by_group in hits.items()}


def test_each_runs_probe_recall_equals_a_recount_from_its_head(audited):
    folder, _, result, heads, _ = audited
    runs = {run["target_epsilon"]: run for run in [*result.runs, result.non_private]}
    expected = _probe_by_hand(folder, {eps: heads[eps] for eps in (3.0, None)})
    assert min(expected[None].values()) > 0.3  # the reference learned to tag the names: the comparison means something
    for eps, recall in expected.items():
        groups = runs[eps]["by_group"]["origin"]
        assert {g: groups[g]["recall"] for g in groups} == pytest.approx(recall, abs=1e-12)
        assert runs[eps]["name_probe"]["origin"]["by_group"] == groups
        low, high = min(recall.values()), max(recall.values())
        disparity = runs[eps]["name_probe"]["origin"]["disparity"]
        assert disparity["name_recall_difference"] == pytest.approx(high - low, abs=1e-12)
        if runs[eps]["degenerate"] is None:
            assert disparity["name_recall_ratio"] == pytest.approx(low / high, abs=1e-12)
    change = runs[3.0]["name_recall_change"]["origin"]
    for group in ("a", "b"):
        assert change["by_group"][group]["recall_change"] == pytest.approx(expected[3.0][group] - expected[None][group])
    if runs[3.0]["degenerate"] is None and runs[None]["degenerate"] is None:
        reference = runs[None]["name_probe"]["origin"]["disparity"]["name_recall_ratio"]
        own = runs[3.0]["name_probe"]["origin"]["disparity"]["name_recall_ratio"]
        assert change["name_recall_ratio_change"] == pytest.approx(own - reference, abs=1e-12)


def test_a_run_that_tags_every_word_o_is_degenerate_and_its_gates_inconclusive(audited):
    _, config, result, _, _ = audited
    forced = next(run for run in result.runs if run["target_epsilon"] == FORCED)
    assert result.non_private["degenerate"] is None
    assert forced["degenerate"] == "the run predicts no entity in any test sentence"
    assert all(g["recall"] == 0.0 for g in forced["by_group"]["origin"].values())  # measured, not nulled
    change = forced["name_recall_change"]["origin"]
    for block, key in [(change, "name_recall_ratio_change"), (change, "name_recall_difference_change")] + [
        (g, "recall_change") for g in change["by_group"].values()
    ]:
        assert block[key] is None and "this run is degenerate" in block[f"{key}_reason"]
    assert forced["name_probe"]["origin"]["disparity"]["name_recall_ratio"] is None
    gates = evaluate_gates(list(config.gates), {"privacy": result})
    statuses = {g.id: g for g in gates}
    for gate_id in (
        f"privacy.name_recall_ratio[origin@eps={FORCED:g}]",
        f"privacy.name_recall_ratio_change[origin@eps={FORCED:g}]",
    ):
        assert statuses[gate_id].status == "inconclusive"
        assert "degenerate" in statuses[gate_id].reason
    assert forced["flags"] and "degenerate" in forced["flags"][0]


def _probe(per_name_hits: list[list[bool]], groups: list[str]) -> tuple[ProbeSet, np.ndarray]:
    templates = [Template(["{name}", "spoke", str(k)], 0) for k in range(len(per_name_hits[0]))]
    names = [f"N{i}" for i in range(len(groups))]
    return ProbeSet(templates, names, groups), np.array(per_name_hits)


def test_recall_changes_are_run_minus_reference_with_paired_intervals():
    groups = ["a"] * 12 + ["b"] * 12
    rng = np.random.default_rng(1)
    reference = rng.random((24, 4)) < 0.8
    run = reference.copy()
    run[12:, :2] = False  # the run forgets half of group b's mentions
    probe, run_hits = _probe(run.tolist(), groups)
    common = {"n_boot": 300, "confidence": 0.95, "seed": 3, "min_names": 10}
    change = recall_changes(probe, run_hits, reference, **common)
    own, ref = probe_report(probe, run_hits, **common), probe_report(probe, reference, **common)
    for g in ("a", "b"):
        assert change["by_group"][g]["recall_change"] == pytest.approx(
            run[np.array(groups) == g].mean() - reference[np.array(groups) == g].mean()
        )
    assert change["by_group"]["a"]["ci"]["recall_change"] == [0.0, 0.0]  # paired: same names, same hits
    for key in ("name_recall_ratio", "name_recall_difference"):
        expected = own["disparity"][key] - ref["disparity"][key]
        assert change[f"{key}_change"] == pytest.approx(expected, abs=1e-12)
        low, high = change["ci"][f"{key}_change"]
        assert low <= change[f"{key}_change"] <= high
    same = recall_changes(probe, reference, reference, **common)
    assert same["name_recall_ratio_change"] == 0.0 and same["ci"]["name_recall_ratio_change"] == [0.0, 0.0]
    few = recall_changes(probe, run_hits, reference, **{**common, "min_names": 13})
    assert few["name_recall_ratio_change"] is None and "fewer than two groups" in few["name_recall_ratio_change_reason"]


@pytest.mark.parametrize(
    ("tags", "f1", "ci", "expected"),
    [
        ([["O", "O"], ["O"]], 0.0, [0.0, 0.0], "predicts no entity"),
        ([["B-person", "B-person"], ["B-person"]], 0.5, [0.3, 0.7], "predicts tag B-person for every test word"),
        ([["B-person", "O"], ["O"]], 0.05, [0.0, 0.1], "not distinguishable from 0"),
        ([["B-person", "O"], ["O"]], 0.6, [0.4, 0.8], None),
    ],
)
def test_degenerate_rule_for_token_runs(tags, f1, ci, expected):
    report = {
        "metrics": {"f1": f1, "n_pred_entities": sum(t.startswith("B-") for s in tags for t in s)},
        "ci": {"f1": ci},
    }
    reason = degenerate_reason(tags, report)
    assert reason is None if expected is None else expected in reason


def test_the_html_section_shows_each_runs_group_recall_with_intervals_and_the_gates(audited):
    from auditkit.report.format import interval
    from auditkit.report.sections import build_section

    _, config, result, _, _ = audited
    gates = evaluate_gates(list(config.gates), {"privacy": result})
    section = build_section("privacy", result, gates)
    recall = next(t for t in section.tables if t.caption.startswith("Name probe per run"))
    shown = {(row[0], row[2]): row for row in recall.rows}
    for run in [*result.runs, result.non_private]:
        label = "non-private" if run["target_epsilon"] is None else f"eps={run['target_epsilon']:g}"
        for group, r in run["by_group"]["origin"].items():
            assert shown[(label, group)][4] == r["recall"]
            assert shown[(label, group)][5] == interval(r["ci"]["recall"])
    disparity = next(t for t in section.tables if t.caption.startswith("Fairness cost of privacy"))
    forced = [row for row in disparity.rows if row[0] == f"eps={FORCED:g}" and row[2] == "name_recall_ratio"]
    assert forced[0][5].startswith("inconclusive") and forced[0][8].startswith("inconclusive")
    assert "degenerate" in forced[0][9]
    assert any(note.startswith(f"eps={FORCED:g}: degenerate") for note in section.notes)


@pytest.mark.parametrize(
    "extra", [{"epochs": [1, 2]}, {"learning_rate": [0.01, 0.1]}, {"sweep": [{"epsilon": 8.0, "max_grad_norm": 0.5}]}]
)
def test_token_runs_take_grids_and_sweeps_and_check_the_base(audited, extra):
    from auditkit import registry
    from auditkit.auditors.privacy import PrivacySettings
    from auditkit.errors import AuditError

    _, config, *_ = audited
    adapter = registry.adapters()["hf-token"]
    settings = PrivacySettings(**{**config.auditors.privacy.model_dump(exclude_unset=True), **extra})
    TokenPrivacyAuditor.check_adapter(settings, config, adapter)  # the validation grid and sweeps apply to tokens
    deep = PrivacySettings(
        **{**config.auditors.privacy.model_dump(exclude_unset=True), "run_kind": "top_layers", "train_top_layers": 3}
    )
    with pytest.raises(AuditError, match="train_top_layers: 3 asked"):
        TokenPrivacyAuditor.check_adapter(deep, config, adapter)


def test_a_degenerate_reference_voids_every_runs_change_before_the_runs_own_reason():
    assert why_inconclusive(None, None) is None
    assert why_inconclusive("no entity", None) == "this run is degenerate: no entity"
    assert why_inconclusive("no entity", "one tag") == "the non-private reference run is degenerate: one tag"
    assert why_inconclusive(None, "one tag").startswith("the non-private reference run is degenerate")
