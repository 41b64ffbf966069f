"""Model adapters: one interface over every kind of model the auditors inspect."""

from auditkit.adapters.base import ModelAdapter, Predictions

__all__ = ["ModelAdapter", "Predictions"]
