"""Fairness over prediction sets too large for memory: one streaming pass collects the counts
the cell bootstrap and the binned ROC AUC need; the statistics then run locally on the counts."""
