"""The one exception type that means "the user's input is unusable" (exit code 2)."""

from __future__ import annotations


class AuditError(Exception):
    """A problem with the config, data, model or output folder that the user can fix.

    The message is printed as one ``error: ...`` line; it names the file, key or column.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # always one line
