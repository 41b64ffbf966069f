"""Differential-privacy runs and membership inference for the privacy auditor."""
