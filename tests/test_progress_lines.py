"""In a CI log (stderr not a terminal) a run prints one plain line per step on stdout; --quiet prints nothing."""

from __future__ import annotations

import json
import re

from tests.conftest import run_cli


def test_one_line_per_step_when_stderr_is_not_a_terminal(workspace):
    proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(workspace / "out"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # stderr is kept for the one error line
    lines = proc.stdout.strip().splitlines()[:-2]  # then the verdict and the report path
    steps = [re.sub(r" done in .*", "", line) for line in lines]
    assert steps == [
        "auditkit: load model",
        "auditkit: score 72 test rows",
        "auditkit: auditor performance",
        f"auditkit: write {workspace / 'out'}",
    ], lines
    assert all(re.search(r"done in \d+\.\d s \(\d+\.\d s in all\)$", line) for line in lines)
    assert "\x1b" not in proc.stdout and "━" not in proc.stdout  # no bars, no escape codes in a log


def test_an_error_after_some_steps_is_still_the_only_line_on_stderr(workspace):
    other = workspace / "other.json"
    other.write_text(json.dumps({"schema_version": 1, "audit": "other", "gates": []}))
    proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(workspace / "out"), "--baseline", str(other))
    assert proc.returncode == 2
    assert proc.stdout.startswith("auditkit: load model done in")  # the error came after a step
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --baseline")


def test_quiet_prints_nothing(workspace):
    proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(workspace / "out"), "--quiet")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""
