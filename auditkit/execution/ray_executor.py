"""The Ray executor: tasks for independent runs, actors that load a model once for shards.

Imported only when ``execution.engine`` is ``ray``. A ``local`` address starts a one-node Ray
bound to 127.0.0.1 without its dashboard and shuts it down on close; ``auto`` or ``ray://...``
joins a cluster someone else runs and leaves it running.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from auditkit.errors import AuditError
from auditkit.execution.base import ExecutionSettings, Executor, R, S, T

try:
    import ray
    from ray._private import ray_constants
    from ray.util import ActorPool
except ImportError:  # without the extra (tests/test_execution.py makes Ray unimportable)
    raise AuditError("execution.engine: ray needs the optional extra: pip install 'auditkit[ray]'") from None


FILE = "path"  # the column Ray Data's include_paths adds: the file each row was read from


def _which_file(batch: Any, count: Callable[[Any], Any], error: AuditError) -> str:
    """The error of the first file in ``batch`` whose rows alone fail ``count``, prefixed by that file."""
    import pyarrow.compute as pc

    for file in pc.unique(batch[FILE]).to_pylist():
        try:
            count(batch.filter(pc.equal(batch[FILE], file)).drop_columns([FILE]))
        except AuditError as exc:
            return f"{file}: {exc}"
    return str(error)


@contextmanager
def _loopback_only():
    """A one-node Ray takes 127.0.0.1 as its node address, so every server it starts listens
    on the loopback interface only (what Ray does on macOS and Windows, where
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is unset)."""
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


_quieted = False


def quiet_native_stderr() -> None:
    """Keep Ray's own log lines (its C++ core writes to file descriptor 2: connection retries, warnings)
    out of the user's stderr when the command line asks (``AUDITKIT_RAY_STDERR=quiet``, set unless
    ``--debug``): descriptor 2 goes to /dev/null and Python's ``sys.stderr`` (progress, the ``error:``
    line, tracebacks) to a copy of it. A Python caller's process is left as it is."""
    global _quieted
    if os.environ.get("AUDITKIT_RAY_STDERR") != "quiet" or _quieted:
        return
    try:
        original = os.dup(2)
        sys.stderr.flush()
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to keep clean
        return
    stream = io.TextIOWrapper(os.fdopen(original, "wb", buffering=0), write_through=True, errors="backslashreplace")
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 2)
    os.close(sink)
    sys.stderr, _quieted = stream, True


def _connect(settings: ExecutionSettings) -> None:
    """Join the cluster at ``settings.address`` within ``connect_timeout_s``, or one AuditError line.

    ``ray.init`` retries an address where nothing answers for minutes; an address with a port is
    first probed over TCP (refused or silent: an error at once), then ``ray.init`` gets the rest of
    the bound in a thread the process does not wait for.
    """
    address, bound = settings.address, settings.connect_timeout_s
    started = time.monotonic()

    def unreachable(why: str) -> AuditError:
        return AuditError(
            f"execution.address: no Ray cluster answers at '{address}' ({why}); start one with "
            "'ray start --head', fix the address, or use 'local'"
        )

    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 address in brackets
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=bound).close()
        except OSError as exc:
            raise unreachable(f"{type(exc).__name__}: {exc.strerror or exc}") from None
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=init, name="auditkit-ray-connect", daemon=True)
    thread.start()
    thread.join(max(0.0, bound - (time.monotonic() - started)))
    if "error" not in outcome:
        raise unreachable(f"no answer within execution.connect_timeout_s = {bound:g} s")
    error = outcome["error"]
    if error is not None:
        raise unreachable(" ".join(str(error).split())[:200] or type(error).__name__)


def _same_threads(threads: int) -> None:
    """Compute with as many torch threads as the process that asked: a float sum split over another
    number of threads rounds differently, and a DP run's threshold or an attribution would then
    differ in its last digits from the same audit in process (Ray gives a 1-CPU task one thread)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _call(fn: Callable[[T], R], item: T, threads: int) -> R:
    _same_threads(threads)
    return fn(item)


class _Worker:
    """Holds one state (a loaded model) and applies functions to shards with it."""

    def __init__(self, make_state: Callable[[], Any], threads: int) -> None:
        _same_threads(threads)
        self.state = make_state()

    def run(self, fn: Callable[[Any, Any], Any], shard: Any) -> Any:
        return fn(self.state, shard)


def _driver_threads() -> int:
    """This process's torch threads (torch's default when torch is not imported yet)."""
    import torch

    return torch.get_num_threads()


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, settings: ExecutionSettings) -> None:
        self.settings = settings
        self._owns_cluster = False
        if not ray.is_initialized():
            quiet_native_stderr()
            if settings.address == "local":
                with _loopback_only():
                    ray.init(
                        num_cpus=settings.num_cpus,
                        include_dashboard=False,
                        logging_level=logging.ERROR,
                        log_to_driver=False,
                    )
            else:
                _connect(settings)
            self._owns_cluster = True  # for an address, our connection, not the cluster: shutdown only disconnects
        resources = ray.cluster_resources()
        self._cpus = float(resources.get("CPU", 1))
        self._gpus = float(resources.get("GPU", 0))

    def _options(self, gpu: bool) -> dict[str, float]:
        gpus = 0.0
        if gpu and self._gpus > 0:
            gpus = self.settings.gpus_per_task if self.settings.gpus_per_task is not None else 1.0
        return {"num_cpus": self.settings.cpus_per_task, "num_gpus": gpus}

    @property
    def workers(self) -> int:
        if self.settings.workers is not None:
            return self.settings.workers
        if self._gpus >= 1:
            return int(self._gpus)
        return max(1, min(2, int(self._cpus // self.settings.cpus_per_task)))

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, gpu: bool = False) -> list[R]:
        task = ray.remote(_call).options(**self._options(gpu))
        shared = ray.put(fn)  # stored once (a trainable with its cached activations), not once per task
        threads = _driver_threads()
        return ray.get([task.remote(shared, item, threads) for item in items])

    def map_with_state(
        self, make_state: Callable[[], S], fn: Callable[[S, T], R], shards: Sequence[T], *, gpu: bool = False
    ) -> list[R]:
        if not shards:
            return []
        worker = ray.remote(_Worker).options(**self._options(gpu))
        threads = _driver_threads()
        actors = [worker.remote(make_state, threads) for _ in range(min(self.workers, len(shards)))]
        try:
            pool = ActorPool(actors)
            return list(pool.map(lambda actor, shard: actor.run.remote(fn, shard), shards))
        finally:
            for actor in actors:
                ray.kill(actor)

    def fold_parquet(
        self,
        path: str | Path,
        columns: list[str],
        count: Callable[[Any], R],
        add: Callable[[R, R], R],
        batch_rows: int = 1 << 20,
    ) -> R | None:
        """Ray Data reads the files on the cluster and counts each batch where it was read; only
        the (small) counts travel back, and are added here as they arrive."""
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False  # auditkit reports its own progress

        paths = FILE not in columns  # a data column of that name: errors then name the folder, not the file

        def one(batch: Any) -> dict[str, np.ndarray]:
            out, error = np.empty(1, dtype=object), np.array([""], dtype=object)
            try:
                out[0] = count(batch.drop_columns([FILE]) if paths else batch)
            except AuditError as exc:  # travels back as a value, naming the file, never as a Ray traceback
                error[0] = _which_file(batch, count, exc) if paths else f"{path}: {exc}"
            return {"part": out, "error": error}

        total = None
        try:
            parts = (
                ray.data.read_parquet(str(path), include_paths=paths)
                .select_columns([*columns, FILE] if paths else columns)
                .map_batches(one, batch_format="pyarrow", batch_size=batch_rows, num_cpus=self.settings.cpus_per_task)
            )
            for batch in parts.iter_batches(batch_format="numpy", batch_size=1):
                for part, error in zip(batch["part"], batch["error"], strict=True):
                    if error:
                        raise AuditError(str(error))
                    total = part if total is None else add(total, part)
        except pa.ArrowException as exc:  # Ray Data merges the files' schemas; in process each file is read alone
            first = str(exc).strip().splitlines()[-1][:300]
            raise AuditError(
                f"{path}: Ray Data cannot read these files as one dataset ({first}); write every file with "
                "the same column types, or run without Ray"
            ) from None
        return total

    def close(self) -> None:
        if self._owns_cluster and ray.is_initialized():
            ray.shutdown()
            self._owns_cluster = False
