"""Bias mitigation: fitted on a carve-out of the training split, judged on the test split, exported."""
