"""Auditors: each inspects the shared predictions and model and returns a typed result."""

from auditkit.auditors.base import AuditContext, Auditor

__all__ = ["AuditContext", "Auditor"]
