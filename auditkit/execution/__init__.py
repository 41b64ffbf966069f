"""Where the heavy parts of an audit run: in this process (the default) or on a Ray cluster.

Auditors see one small :class:`~auditkit.execution.base.Executor` interface and never know which
one runs. Nothing here imports Ray unless ``execution.engine`` is ``ray`` (or ``--ray`` is given).
"""

from auditkit.execution.base import ExecutionSettings, Executor, InProcessExecutor, open_executor

__all__ = ["ExecutionSettings", "Executor", "InProcessExecutor", "open_executor"]
