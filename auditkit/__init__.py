"""auditkit: ethics and explainability audits for machine-learning classifiers."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "run"]


def run(config_path, **kwargs):  # type: ignore[no-untyped-def]
    """Run an audit from Python; returns the typed :class:`~auditkit.results.AuditResult`.

    Keyword arguments are those of :func:`auditkit.runner.run_audit` (``out``, ``only``,
    ``seed``, ``write``).
    """
    from auditkit.runner import run_audit

    return run_audit(config_path, **kwargs)[0]
