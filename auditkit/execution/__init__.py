"""Where the heavy parts of an audit run: in this process (the default) or on a Ray cluster.

Auditors see one small :class:`~auditkit.execution.base.Executor` interface and never know which
one runs. Nothing here imports Ray unless ``execution.engine`` is ``ray`` (or ``--ray`` is given).
"""

from auditkit.config import ExecutionSettings
from auditkit.execution.base import Executor, InProcessExecutor

__all__ = ["ExecutionSettings", "Executor", "InProcessExecutor", "open_executor"]


def open_executor(settings: ExecutionSettings | None) -> Executor:
    """The executor ``settings`` ask for; Ray is imported only here and only for ``engine: ray``."""
    if settings is None or settings.engine == "in_process":
        return InProcessExecutor()
    from auditkit.execution.ray_executor import RayExecutor

    return RayExecutor(settings)
