"""In a CI log (stderr not a terminal) a run prints one plain line per step; --quiet prints nothing."""

from __future__ import annotations

import re

from tests.conftest import run_cli


def test_one_line_per_step_when_stderr_is_not_a_terminal(workspace):
    proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(workspace / "out"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    steps = [re.sub(r" done in .*", "", line) for line in lines]
    assert steps == [
        "auditkit: load model",
        "auditkit: score 72 test rows",
        "auditkit: auditor performance",
        f"auditkit: write {workspace / 'out'}",
    ], lines
    assert all(re.search(r"done in \d+\.\d s \(\d+\.\d s in all\)$", line) for line in lines)
    assert "\x1b" not in proc.stderr and "━" not in proc.stderr  # no bars, no escape codes in a log


def test_quiet_prints_nothing(workspace):
    proc = run_cli("run", str(workspace / "audit.yaml"), "--out", str(workspace / "out"), "--quiet")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""
