"""Lines of data files, split as their formats define them (JSON Lines, CoNLL)."""

from __future__ import annotations


def lf_lines(text: str) -> list[str]:
    """The lines of a JSON Lines or CoNLL text: split on LF only, as JSON Lines says (a CR before it is dropped).

    ``str.splitlines`` also splits on U+2028, U+0085 and other Unicode line breaks, which JSON allows
    unescaped inside strings, and so would cut a valid line in two.
    """
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
