"""--out never deletes what auditkit did not write; a killed run's leftovers are swept next time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.report.output import MARKER, writers
from tests.conftest import ROOT, write_config


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error_line(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and result.stderr.strip().splitlines()[-1] == lines[0], result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_out_onto_the_config_folder_refuses_and_deletes_nothing(workspace):
    before = snapshot(workspace)
    line = one_error_line(invoke("run", str(workspace / "audit.yaml"), "--out", str(workspace)), "--out", MARKER)
    assert "not an auditkit output folder" in line
    assert snapshot(workspace) == before


def test_newcomer_out_audits_with_the_real_config_refuses_before_any_work(tmp_path):
    audits = tmp_path / "audits"
    shutil.copytree(ROOT / "audits", audits, ignore=shutil.ignore_patterns("baselines", "source"))
    before = snapshot(audits)
    result = invoke("run", str(audits / "credit_risk.yaml"), "--out", str(audits))
    one_error_line(result, f"--out {audits}", "not an auditkit output folder")
    assert snapshot(audits) == before
    assert not (tmp_path / "models").exists()  # refused before building anything


def test_output_folder_is_marked_and_replaced_next_time(workspace):
    out = workspace / "out"
    out.mkdir()  # an empty folder is fine
    assert invoke("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet").exit_code == 0
    record = json.loads((out / MARKER).read_text())
    assert record["audit"] == "tiny" and record["auditkit_version"]
    conditional = {"entities.jsonl", "name_probe.jsonl", "mitigation.json"}  # token tasks, or the mitigation auditor
    assert set(record["files"]) == set(writers()) - conditional  # the files written, nothing else
    assert invoke("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet").exit_code == 0
    assert {p.name for p in out.iterdir()} == {*writers(), MARKER} - conditional


def test_a_user_file_inside_an_output_folder_is_kept_and_the_run_refused(workspace):
    out = workspace / "out"
    assert invoke("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet").exit_code == 0
    (out / "my-notes.txt").write_text("mine")
    before = snapshot(out)
    one_error_line(invoke("run", str(workspace / "audit.yaml"), "--out", str(out)), "'my-notes.txt'", "did not write")
    assert snapshot(out) == before


def test_an_output_folder_from_before_the_marker_is_replaced(workspace):
    out = workspace / "out"
    out.mkdir()
    six = ["report.html", "summary.json", "junit.xml", "summary.md", "predictions.csv", "attributions.jsonl"]
    for name in six:  # the contract's files, as every audit wrote them before the marker
        (out / name).write_text("old")
    assert invoke("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet").exit_code == 0
    assert (out / MARKER).is_file() and (out / "summary.json").read_text() != "old"


def test_leftovers_of_killed_runs_are_swept_when_their_process_is_gone(workspace, tiny_bert, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_bert, models / "m")
    config = yaml.safe_load((workspace / "audit.yaml").read_text())
    config["model"]["path"] = str(models / "m")
    write_config(workspace, config)
    gone, alive = dead_pid(), subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        debris = [
            workspace / f".out.staging-{gone}-abc",
            workspace / f".out.previous-{gone}",
            models / f".m.building-{gone}",
            models / f".m.old-{gone}",
        ]
        kept = [workspace / f".out.staging-{alive.pid}-xyz", models / f".m.building-{alive.pid}", workspace / "keep"]
        for folder in debris + kept:
            folder.mkdir()
            (folder / "summary.json").write_text("{}")
        result = invoke("run", str(workspace / "audit.yaml"), "--out", str(workspace / "out"), "--quiet")
        assert result.exit_code == 0, result.stderr
        assert [p for p in debris if p.exists()] == []
        assert all(p.exists() for p in kept)
    finally:
        alive.kill()
        alive.wait()


def test_a_run_killed_between_the_renames_gets_its_old_set_back(workspace):
    out = workspace / "out"
    assert invoke("run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet").exit_code == 0
    backup = workspace / f".out.previous-{dead_pid()}"
    out.rename(backup)
    from auditkit.report.output import _recover

    _recover(out)
    assert (out / MARKER).is_file() and not backup.exists()
