"""Text cells of the CSV files auditkit writes, guarded against spreadsheet formulas.

A word, id or group name from the data that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is run as a formula when a reviewer opens ``predictions.csv`` in a spreadsheet (CSV injection,
OWASP). Such a cell is written with a leading ``'``, as OWASP advises; a cell that already starts with
``'`` gets one more, so the guard is reversible and auditkit's own readers give back the exact value.
Numeric columns are left alone: ``-0.5`` stays a number.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def guard(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unguard(value: object) -> object:
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def guarded(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text columns are guarded (a copy: the caller's frame keeps its values)."""
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(guard)
    return out


def unguarded(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as it was before :func:`guarded`, for a CSV auditkit (or anyone following OWASP) wrote."""
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(unguard)
    return frame
