"""auditkit: ethics and explainability audits for machine-learning classifiers."""

from __future__ import annotations

from auditkit.version import __version__

__all__ = ["__version__", "run"]


def run(config_path, **kwargs):  # type: ignore[no-untyped-def]
    """Run an audit from Python; returns the typed :class:`~auditkit.results.AuditResult`.

    Keyword arguments are those of :func:`auditkit.runner.run_audit` (``out``, ``only``,
    ``seed``, ``write``).
    """
    from auditkit.report.notebook import NotebookResult
    from auditkit.runner import run_audit

    return NotebookResult.of(run_audit(config_path, **kwargs)[0])
