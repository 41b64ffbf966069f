"""Statistics shared by auditors: confusion-count bootstraps, rates, disparities, intervals."""
