"""Sweep the sibling folders a killed run leaves behind, once their process is gone.

Staging and backup folders carry the writer's process id in their name
(``.<name>.staging-<pid>-…``, ``.<name>.building-<pid>``); a folder whose process no
longer runs on this machine is debris and is removed. Nothing else is touched.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a process of another user counts)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # cannot tell: keep the folder
    return True


def sweep(parent: Path, name: str, kinds: tuple[str, ...]) -> list[Path]:
    """Remove ``.<name>.<kind>-<pid>…`` folders in ``parent`` whose process is gone; returns them."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:{'|'.join(map(re.escape, kinds))})-(\d+)(?:-.*)?$")
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink() or pid_alive(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
