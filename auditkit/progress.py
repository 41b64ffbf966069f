"""Progress for long steps: bars on a terminal, one plain line per step in logs, nothing with --quiet.

Plain lines go to stdout: stderr carries nothing but the one ``error:`` line of a failed run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressReporter:
    """Hands out progress tasks and step lines; does nothing when disabled.

    ``enabled=None`` decides by stderr: a terminal gets bars, anything else (a CI log)
    gets one line per finished step with its elapsed time on stdout, so a long run is never silent.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = enabled is not False
        self.bars = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.started = time.perf_counter()

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        if not (self.enabled and self.bars):
            yield lambda n=1: None
            return
        console = Console(stderr=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task_id, n)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """Time one step of the run; without bars, print a line when it finishes."""
        started = time.perf_counter()
        yield
        if self.enabled and not self.bars:
            now = time.perf_counter()
            elapsed = f"{now - started:.1f} s ({now - self.started:.1f} s in all)"
            print(f"auditkit: {description} done in {elapsed}", flush=True)

    def note(self, message: str) -> None:
        if self.enabled and self.bars:
            Console(stderr=True).print(message, highlight=False, markup=False)
        elif self.enabled:
            print(f"auditkit: {' '.join(message.split())}", flush=True)


SILENT = ProgressReporter(enabled=False)
