"""The executor interface, its in-process implementation and the ``execution:`` settings."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from auditkit.config import ExecutionSettings
from auditkit.errors import AuditError

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")


class Executor(ABC):
    """Runs a function over items, as plain calls or as tasks on a cluster, keeping the input order."""

    name: str

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Sequence[T], *, gpu: bool = False) -> list[R]:
        """``[fn(item) for item in items]``, each call its own task (with a GPU when ``gpu`` and present)."""

    @abstractmethod
    def map_with_state(
        self, make_state: Callable[[], S], fn: Callable[[S, T], R], shards: Sequence[T], *, gpu: bool = False
    ) -> list[R]:
        """``[fn(state, shard) ...]`` where ``state = make_state()`` is built once per worker
        (a loaded model), not once per shard."""

    @abstractmethod
    def fold_parquet(
        self,
        path: str | Path,
        columns: list[str],
        count: Callable[[Any], R],
        add: Callable[[R, R], R],
        batch_rows: int = 1 << 20,
    ) -> R | None:
        """``add`` over ``count(batch)`` for every record batch of a Parquet file or folder, reading
        one batch at a time (None for no rows). ``count`` gets a ``pyarrow.Table``; an AuditError
        it raises comes back as one naming the file the batch was read from."""

    @property
    def workers(self) -> int:
        """How many shards run at once."""
        return 1

    def close(self) -> None:
        """Release the cluster connection (default: nothing to release)."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Everything in this process, one item after another: the default and the reference."""

    name = "in_process"

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, gpu: bool = False) -> list[R]:
        return [fn(item) for item in items]

    def map_with_state(
        self, make_state: Callable[[], S], fn: Callable[[S, T], R], shards: Sequence[T], *, gpu: bool = False
    ) -> list[R]:
        state = make_state()
        return [fn(state, shard) for shard in shards]

    def fold_parquet(
        self,
        path: str | Path,
        columns: list[str],
        count: Callable[[Any], R],
        add: Callable[[R, R], R],
        batch_rows: int = 1 << 20,
    ) -> R | None:
        import pyarrow as pa
        import pyarrow.dataset as ds

        total = None
        for fragment in ds.dataset(path, format="parquet").get_fragments():  # file by file, to name it
            for batch in fragment.to_batches(columns=columns, batch_size=batch_rows, batch_readahead=1):
                try:
                    part = count(pa.Table.from_batches([batch]))
                except AuditError as exc:
                    raise AuditError(f"{fragment.path}: {exc}") from None
                total = part if total is None else add(total, part)
        return total


def check_execution(settings: ExecutionSettings) -> str:
    """What ``auditkit validate`` says about ``execution``; AuditError when Ray is asked for but not
    installed. Finds Ray without importing it and starts nothing."""
    if settings.engine == "in_process":
        return "execution: in process"
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except ValueError:  # in sys.modules as None: made unimportable on purpose
        found = False
    if not found:
        raise AuditError("execution.engine: ray needs the optional extra: pip install 'auditkit[ray]'")
    return f"execution: ray at '{settings.address}' (reached when the audit runs)"


def shards(items: Sequence[T] | Iterable[T], n: int) -> list[list[T]]:
    """``items`` cut into ``n`` contiguous, nearly equal shards (none empty), order kept."""
    items = list(items)
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for k in range(n):
        end = start + size + (k < extra)
        out.append(items[start:end])
        start = end
    return out
