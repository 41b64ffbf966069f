"""Read token-classification data: CoNLL columns or JSONL, tags checked and normalised to IOB2."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditkit.errors import AuditError
from auditkit.ner.tags import TagError, detect_scheme, to_iob2
from auditkit.textlines import lf_lines

DOCSTART = "-DOCSTART-"
#: CoNLL columns are separated by spaces and tabs only: a token may hold any other character, even
#: a no-break space or a Unicode line separator, as JSON Lines strings may.
COLUMN_SEPARATOR = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Sentences:
    """Sentences of words with IOB2 tags and sentence-level metadata, aligned by position."""

    ids: list[str]
    tokens: list[list[str]]
    tags: list[list[str]]  # IOB2
    frame: pd.DataFrame  # one row per sentence, indexed by id: metadata columns (e.g. a sensitive feature)
    lines: list[int]  # line of the file where each sentence starts, for messages
    scheme: str  # the scheme the file was written in (iob1, iob2 or bioes)
    sha256: str

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, positions: list[int]) -> Sentences:
        pick = list(positions)
        return Sentences(
            [self.ids[i] for i in pick],
            [self.tokens[i] for i in pick],
            [self.tags[i] for i in pick],
            self.frame.iloc[pick],
            [self.lines[i] for i in pick],
            self.scheme,
            self.sha256,
        )


def read_sentences(
    path: Path,
    fmt: str | None = None,
    *,
    tokens: str = "tokens",
    tags: str = "tags",
    id_column: str | None = None,
    scheme: str = "auto",
) -> Sentences:
    """Read ``path`` (``conll`` or ``jsonl``); AuditError names the file and line of any problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{path}: data file not found") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: is a folder, expected a data file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditError(f"{path}: not UTF-8 text (byte {exc.start}); re-encode the file as UTF-8") from None
    fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".json") else "conll")
    if fmt == "jsonl":
        ids, words, raw_tags, lines, meta = _read_jsonl(path, text, tokens, tags, id_column)
    elif fmt == "conll":
        if id_column is not None:
            raise AuditError(f"{path}: data.id_column needs JSONL; CoNLL sentences are numbered sent-1, sent-2, ...")
        ids, words, raw_tags, lines, meta = _read_conll(path, text)
    else:
        raise AuditError(f"{path}: data.format '{fmt}' cannot hold token-classification data; use conll or jsonl")
    if not ids:
        raise AuditError(f"{path}: the dataset has no sentences")
    used = detect_scheme(raw_tags) if scheme == "auto" else scheme
    normalised = []
    for sentence_tags, line, is_jsonl_line in zip(raw_tags, lines, [fmt == "jsonl"] * len(lines), strict=True):
        try:
            normalised.append(to_iob2(sentence_tags, used))
        except TagError as exc:
            where = f"{path}:{line}" if is_jsonl_line else f"{path}:{line + exc.index}"
            word = f" (word {exc.index + 1})" if is_jsonl_line else ""
            hint = ""
            if scheme == "auto" and used == "iob2":
                hint = (
                    "; data.tag_scheme auto read the file as iob2 because its other entities open with B-; "
                    "fix the tag, or set data.tag_scheme: iob1 to read every I- after O as opening an entity"
                )
            raise AuditError(f"{where}{word}: {exc}{hint}") from None
    frame = pd.DataFrame(meta, index=pd.Index(ids, name="id"))
    return Sentences(ids, words, normalised, frame, lines, used, hashlib.sha256(raw).hexdigest())


def _read_conll(path: Path, text: str):
    ids, words, tags, lines = [], [], [], []
    current_words: list[str] = []
    current_tags: list[str] = []
    start = 0

    def close() -> None:
        if current_words:
            ids.append(f"sent-{len(ids) + 1}")
            words.append(list(current_words))
            tags.append(list(current_tags))
            lines.append(start)
            current_words.clear()
            current_tags.clear()

    width = 0  # columns of the file's first token line: every token line must have as many
    for number, line in enumerate(lf_lines(text), start=1):
        columns = COLUMN_SEPARATOR.split(line.strip(" \t"))
        if columns == [""]:
            close()
            continue
        if columns[0] == DOCSTART:
            close()
            continue
        if len(columns) < 2:
            raise AuditError(f"{path}:{number}: expected a token and a tag separated by spaces or tabs, got {line!r}")
        width = width or len(columns)
        if len(columns) != width:
            raise AuditError(
                f"{path}:{number}: {len(columns)} columns where the file's first token line has {width} "
                f"(a token holding a space?): {line!r}"
            )
        if not current_words:
            start = number
        current_words.append(columns[0])
        current_tags.append(columns[-1])
    close()
    return ids, words, tags, lines, {}


def _read_jsonl(path: Path, text: str, tokens: str, tags: str, id_column: str | None):
    ids, words, all_tags, lines = [], [], [], []
    meta: dict[str, list[object]] = {}
    seen: set[str] = set()
    for number, line in enumerate(lf_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise AuditError(f"{path}:{number}: expected a JSON object per line")
        sentence_words = _string_list(record, tokens, path, number, "data.tokens")
        sentence_tags = _string_list(record, tags, path, number, "data.label")
        if len(sentence_words) != len(sentence_tags):
            raise AuditError(
                f"{path}:{number}: '{tokens}' has {len(sentence_words)} words "
                f"but '{tags}' has {len(sentence_tags)} tags"
            )
        if not sentence_words:
            raise AuditError(f"{path}:{number}: the sentence has no words")
        if id_column is not None:
            if record.get(id_column) in (None, ""):
                raise AuditError(f"{path}:{number}: id column '{id_column}' is missing or empty")
            sentence_id = str(record[id_column])
            if sentence_id in seen:
                raise AuditError(f"{path}:{number}: id column '{id_column}' repeats '{sentence_id}'")
        else:
            sentence_id = f"sent-{len(ids) + 1}"
        seen.add(sentence_id)
        for key, value in record.items():
            if key in (tokens, tags):
                continue
            if isinstance(value, (list, dict)):
                continue  # only scalar sentence-level metadata can be a sensitive feature
            meta.setdefault(key, [None] * len(ids)).append(value)
        for column in meta.values():
            if len(column) < len(ids) + 1:
                column.append(None)
        ids.append(sentence_id)
        words.append(sentence_words)
        all_tags.append(sentence_tags)
        lines.append(number)
    return ids, words, all_tags, lines, meta


def _string_list(record: dict, key: str, path: Path, number: int, setting: str) -> list[str]:
    if key not in record:
        raise AuditError(f"{path}:{number}: column '{key}' (from {setting}) is not in the record")
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise AuditError(f"{path}:{number}: column '{key}' must be a list of non-empty strings")
    return [v.strip() for v in value]
