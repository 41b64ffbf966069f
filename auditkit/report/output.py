"""Write the whole output folder atomically: all files or, on failure, the previous set."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from auditkit.errors import AuditError
from auditkit.results import AuditResult

Writer = Callable[[AuditResult, Path], None]


def writers() -> dict[str, Writer]:
    from auditkit.report import html, junit, markdown, summary, tables

    return {
        "summary.json": summary.write,
        "junit.xml": junit.write,
        "summary.md": markdown.write,
        "predictions.csv": tables.write_predictions,
        "attributions.jsonl": tables.write_attributions,
        "entities.jsonl": tables.write_entities,
        "report.html": html.write,
    }


def check_writable(out_dir: Path) -> None:
    """Fail before any long work when the output folder cannot be written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise AuditError(f"--out {out_dir}: exists and is not a folder")
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out_dir.name}.probe-"):
            pass
    except OSError as exc:
        raise AuditError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None


def write_outputs(result: AuditResult, out_dir: Path) -> Path:
    """Stage every file in a sibling folder, then swap it in; the old set stays until the swap."""
    out_dir = Path(out_dir)
    check_writable(out_dir)
    _recover(out_dir)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.staging-"))
    try:
        for name, write in writers().items():
            write(result, staging / name)
        os.chmod(staging, 0o755)
        _swap(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _swap(staging: Path, out_dir: Path) -> None:
    backup = out_dir.parent / f".{out_dir.name}.previous"
    shutil.rmtree(backup, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(backup)
    staging.rename(out_dir)
    shutil.rmtree(backup, ignore_errors=True)


def _recover(out_dir: Path) -> None:
    """A run killed between the two renames of _swap left the old set as the backup: restore it."""
    backup = out_dir.parent / f".{out_dir.name}.previous"
    if backup.exists() and not out_dir.exists():
        backup.rename(out_dir)
