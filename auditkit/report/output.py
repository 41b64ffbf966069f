"""Write the whole output folder atomically: all files or, on failure, the previous set.

The folder carries a marker (``.auditkit-output``) that lists the files auditkit wrote.
An existing ``--out`` folder is replaced only when it is empty or carries the marker and
holds nothing else; any other folder is refused, so no file auditkit did not write is
ever removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from auditkit.errors import AuditError
from auditkit.leftovers import pid_alive, sweep
from auditkit.results import AuditResult
from auditkit.version import __version__

Writer = Callable[[AuditResult, Path], None]
MARKER = ".auditkit-output"


def writers() -> dict[str, Writer]:
    from auditkit.report import html, junit, markdown, summary, tables

    return {
        "summary.json": summary.write,
        "junit.xml": junit.write,
        "summary.md": markdown.write,
        "predictions.csv": tables.write_predictions,
        "attributions.jsonl": tables.write_attributions,
        "entities.jsonl": tables.write_entities,
        "name_probe.jsonl": tables.write_name_probe,
        "mitigation.json": tables.write_mitigation,
        "report.html": html.write,
    }


def check_writable(out_dir: Path) -> None:
    """Fail before any long work when the output folder cannot be written or is not ours to replace."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise AuditError(f"--out {out_dir}: is a symbolic link; give the folder it points to")
    if out_dir.exists() and not out_dir.is_dir():
        raise AuditError(f"--out {out_dir}: exists and is not a folder")
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out_dir.name}.probe-"):
            pass
    except OSError as exc:
        raise AuditError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None
    check_replaceable(out_dir)


def check_replaceable(out_dir: Path) -> None:
    """Refuse a non-empty folder that is not an auditkit output folder, or one holding other files."""
    if not out_dir.is_dir():
        return
    entries = list(out_dir.iterdir())
    if not entries:
        return
    ours = written_files(out_dir)
    if ours is None:
        raise AuditError(
            f"--out {out_dir}: the folder is not empty and is not an auditkit output folder (no {MARKER}); "
            "auditkit replaces only its own output folders: choose a new or empty folder"
        )
    foreign = sorted(e.name for e in entries if e.name not in ours or e.is_symlink() or not e.is_file())
    if foreign:
        raise AuditError(
            f"--out {out_dir}: holds '{foreign[0]}', which auditkit did not write; move it out of the folder "
            "(auditkit never deletes files it did not write) or choose another folder"
        )


#: What every audit wrote before output folders had a marker (and before token tasks added entities.jsonl).
BEFORE_THE_MARKER = frozenset(
    {"report.html", "summary.json", "junit.xml", "summary.md", "predictions.csv", "attributions.jsonl"}
)


def written_files(folder: Path) -> set[str] | None:
    """Names auditkit wrote in ``folder`` (marker included), or None when it is not an output folder.

    A folder from before the marker counts when it holds exactly the files every audit wrote then.
    """
    marker = folder / MARKER
    if not marker.exists():
        names = {e.name for e in folder.iterdir()}
        return names if names == BEFORE_THE_MARKER else None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        files = record["files"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return {*files, MARKER}


def write_outputs(result: AuditResult, out_dir: Path) -> Path:
    """Stage every file in a sibling folder, then swap it in; the old set stays until the swap."""
    out_dir = Path(out_dir)
    _recover(out_dir)
    sweep(out_dir.parent, out_dir.name, ("staging", "previous"))
    check_writable(out_dir)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.staging-{os.getpid()}-"))
    try:
        for name, write in writers().items():
            write(result, staging / name)
        names = sorted(p.name for p in staging.iterdir())  # what was written: some writers skip a task
        record = {"format": 1, "audit": result.audit, "auditkit_version": __version__, "files": names}
        (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)
        check_replaceable(out_dir)  # again: a file may have appeared while the audit ran
        _swap(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _swap(staging: Path, out_dir: Path) -> None:
    backup = out_dir.parent / f".{out_dir.name}.previous-{os.getpid()}"
    shutil.rmtree(backup, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(backup)
    staging.rename(out_dir)
    shutil.rmtree(backup, ignore_errors=True)


def _recover(out_dir: Path) -> None:
    """A run killed between the two renames of _swap left the old set as the backup: restore it."""
    if out_dir.exists() or not out_dir.parent.is_dir():
        return
    prefix = f".{out_dir.name}.previous"
    backups = [p for p in out_dir.parent.iterdir() if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink()]
    for backup in sorted(backups, key=lambda p: p.stat().st_mtime, reverse=True):
        pid = backup.name.rpartition("-")[2]
        if backup.name != prefix and not (pid.isdigit() and not pid_alive(int(pid))):
            continue
        if written_files(backup) is not None:
            backup.rename(out_dir)
            return
