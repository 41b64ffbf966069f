"""Model adapters: one interface over every kind of model the auditors inspect."""

from auditkit.adapters.base import ModelAdapter
from auditkit.predictions import Predictions

__all__ = ["ModelAdapter", "Predictions"]
