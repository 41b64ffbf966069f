"""Load the audit data: read the file, map the label, derive columns, split, and render texts."""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from auditkit.config import DataConfig
from auditkit.csvcells import unguarded
from auditkit.errors import AuditError
from auditkit.streaming.source import StreamedSplit, load_streamed
from auditkit.textlines import lf_lines

ID = "id"
SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'"}


@dataclass(frozen=True)
class Split:
    """One part of the data (train or test), rows aligned across every field."""

    name: str
    frame: pd.DataFrame  # original and derived columns, indexed by id
    y: np.ndarray  # label index per row: 0/1 (1 = positive_label) for binary, 0..k-1 for multiclass
    texts: list[str] | None  # what a text model reads, when the config defines it
    classes: tuple[str, ...] = ()  # label name of each index in y, e.g. (negative, positive)

    @property
    def ids(self) -> np.ndarray:
        return self.frame.index.to_numpy(dtype=str)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, positions: np.ndarray, name: str | None = None) -> Split:
        texts = [self.texts[i] for i in positions] if self.texts is not None else None
        return Split(name or self.name, self.frame.iloc[positions], self.y[positions], texts, self.classes)


def split_sha256(split: Split) -> str:
    """Fingerprint of which rows a split holds and their 0/1 labels (a baseline must audit the same)."""
    if isinstance(split, StreamedSplit):  # every row of the streamed files: their hash says which
        return split.fingerprint
    digest = hashlib.sha256()
    if not isinstance(split, Split):  # token classification: sentences and their IOB2 tags
        for row_id, tags in zip(split.ids, split.tags, strict=True):
            digest.update(f"{row_id}\t{' '.join(tags)}\n".encode())
        return digest.hexdigest()
    for row_id, label in zip(split.ids, split.y, strict=True):
        digest.update(f"{row_id}\t{int(label)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class AuditData:
    train: Split
    test: Split
    sha256: str  # of the data file's bytes
    sensitive_features: tuple[str, ...]
    path: Path
    label_names: tuple[str, ...]  # binary: (negative, positive); multiclass: the k class names in index order
    non_feature_columns: frozenset[str]  # label, id, derived and text columns: never model inputs by default
    label_column: str = ""  # never a model input: the model would read the answer
    task: str = "binary"  # or "multiclass"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.label_names


def load_data(config: DataConfig, seed: int, *, hold_out: bool = True) -> AuditData:
    """Read and split the data; without ``hold_out`` every row is test and train is empty
    (a file of predictions has no training rows: see ``ModelAdapter.holds_out``)."""
    if config.task == "token-classification":
        from auditkit.ner.data import load_token_data

        return load_token_data(config, seed)  # type: ignore[return-value]  # sentences, not rows
    if config.streaming:
        labels = (label_text(config.negative_label), label_text(config.positive_label))
        return load_streamed(config, labels)  # type: ignore[return-value]  # files described, rows never loaded
    path = Path(config.path)
    frame, digest = read_table(path, config.format, config.sep, config.id_column)
    if frame.empty:
        raise AuditError(f"{path}: the dataset has no rows")
    frame = _index_by_id(frame, config, path)
    labels, y = _label(frame, config, path)
    frame = _derive(frame, config, path)
    for column in config.sensitive_features:
        _require(frame, column, path, "data.sensitive_features")
        if column in (config.label, config.id_column):
            role = "label" if column == config.label else "id column"
            raise AuditError(f"data.sensitive_features: '{column}' is the {role}, not an attribute of the people")
        missing = frame[column].isna()
        if missing.any():
            raise AuditError(
                f"{path}: sensitive feature '{column}' is missing in {int(missing.sum())} rows "
                f"(first id {frame.index[missing.to_numpy()][0]}); fill or drop them before auditing"
            )
    texts = render_texts(frame, config, path)
    if hold_out:
        train_pos, test_pos = _split(frame, y, config, seed, path, labels)
    else:
        train_pos, test_pos = np.arange(0), np.arange(len(frame))

    def part(name: str, positions: np.ndarray) -> Split:
        rows = [texts[i] for i in positions] if texts else None
        return Split(name, frame.iloc[positions], y[positions], rows, labels)

    non_features = {config.label, *config.derived, *([config.id_column] if config.id_column else [])}
    if config.text is not None and config.text.column:
        non_features.add(config.text.column)
    return AuditData(
        part("train", train_pos),
        part("test", test_pos),
        digest,
        tuple(config.sensitive_features),
        path,
        labels,
        frozenset(non_features),
        config.label,
        config.task,
    )


def read_table(
    path: Path, fmt: str | None = None, sep: str | None = None, ids: str | None = None
) -> tuple[pd.DataFrame, str]:
    """Read CSV, Parquet or JSONL strictly (UTF-8; ``ids``, the id column, is read as text from a CSV)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{path}: data file not found") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: is a folder, expected a data file") from None
    digest = hashlib.sha256(raw).hexdigest()
    fmt = fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}.get(path.suffix.lower())
    if fmt is None:
        raise AuditError(f"{path}: unknown data format '{path.suffix}'; set data.format to csv, parquet or jsonl")
    text = ""
    if fmt != "parquet":
        try:
            text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first column's name
        except UnicodeDecodeError as exc:
            raise AuditError(f"{path}: not UTF-8 text (byte {exc.start}); re-encode the file as UTF-8") from None
    if not raw.strip():
        raise AuditError(f"{path}: the dataset has no rows")
    if fmt == "jsonl":
        return _read_jsonl(path, text), digest
    if fmt == "csv":
        _check_header(path, text, sep or ",", sep is None)
    try:
        if fmt == "csv":
            # the id column is text: "007" and "7" are two ids, not one number
            dtype = {ids: str} if ids else None
            frame = unguarded(pd.read_csv(io.StringIO(text), sep=sep or ",", keep_default_na=True, dtype=dtype))
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise AuditError(f"{path}: the dataset has no rows") from None
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise AuditError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from None
    return frame, digest


def _check_header(path: Path, text: str, sep: str, guessed: bool) -> None:
    """Refuse a header that repeats a column, or that looks separated by something other than ``sep``."""
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=sep), [])
    if guessed and len(header) <= 1:
        other = max(SEPARATORS, key=lambda c: header[0].count(c) if header else 0)
        if header and header[0].count(other) > 0:
            raise AuditError(f"{path}: looks like {SEPARATORS[other]}-separated; set data.sep: {other!r}")
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise AuditError(f"{path}: the header names column '{repeated[0]}' more than once")


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    """One JSON object per line; a bad line is reported by its line number."""
    records = []
    for number, line in enumerate(lf_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise AuditError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise AuditError(f"{path}:{number}: expected one JSON object per line, found {type(record).__name__}")
        records.append(record)
    if not records:
        raise AuditError(f"{path}: the dataset has no rows")
    return pd.DataFrame.from_records(records)


def _require(frame: pd.DataFrame, column: str, path: Path, key: str) -> None:
    if column not in frame.columns:
        close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise AuditError(f"{path}: column '{column}' (from {key}) is not in the data{hint}")


def _index_by_id(frame: pd.DataFrame, config: DataConfig, path: Path) -> pd.DataFrame:
    if config.id_column is None:
        ids = pd.Index([f"row-{i}" for i in range(1, len(frame) + 1)], name=ID)
        return frame.set_axis(ids)
    _require(frame, config.id_column, path, "data.id_column")
    ids = frame[config.id_column]
    if ids.isna().any():
        raise AuditError(f"{path}: id column '{config.id_column}' has empty values")
    if ids.duplicated().any():
        raise AuditError(f"{path}: id column '{config.id_column}' repeats '{ids[ids.duplicated()].iloc[0]}'")
    return frame.set_axis(pd.Index(ids.astype(str), name=ID))


def _label(frame: pd.DataFrame, config: DataConfig, path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """The class names in index order and each row's label index."""
    _require(frame, config.label, path, "data.label")
    values = frame[config.label]
    if values.isna().any():
        raise AuditError(f"{path}: label column '{config.label}' is empty in {int(values.isna().sum())} rows")
    as_text = values.map(label_text)
    if config.task == "multiclass":
        return _classes(as_text, config, path)
    positive, negative = label_text(config.positive_label), label_text(config.negative_label)
    unexpected = sorted(set(as_text) - {positive, negative})
    if unexpected:
        shown = ", ".join(repr(v) for v in unexpected[:5])
        raise AuditError(
            f"{path}: label column '{config.label}' has values other than the declared "
            f"positive_label {positive!r} and negative_label {negative!r}: {shown}"
        )
    return (negative, positive), (as_text == positive).to_numpy(dtype=np.int64)


def _classes(as_text: pd.Series, config: DataConfig, path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    found = sorted(set(as_text))
    if config.classes is not None:
        classes = tuple(str(c).strip() for c in config.classes)
        unexpected = [v for v in found if v not in classes]
        if unexpected:
            shown = ", ".join(repr(v) for v in unexpected[:5])
            raise AuditError(f"{path}: label column '{config.label}' has values not in data.classes: {shown}")
    else:
        classes = tuple(found)
    if len(classes) < 3:
        raise AuditError(
            f"{path}: label column '{config.label}' holds {len(classes)} classes; "
            "a multiclass task needs at least 3 (use task: binary for 2)"
        )
    index = {c: i for i, c in enumerate(classes)}
    return classes, as_text.map(index).to_numpy(dtype=np.int64)


def label_text(value: object) -> str:
    """Compare labels as text so YAML's 1 matches CSV's 1 and 'good' matches 'good'."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _derive(frame: pd.DataFrame, config: DataConfig, path: Path) -> pd.DataFrame:
    frame = frame.copy()
    for name, spec in config.derived.items():
        _require(frame, spec.source, path, f"data.derived.{name}.source")
        if name in frame.columns and not spec.replace:
            raise AuditError(
                f"{path}: data.derived.{name}: the data already has a column '{name}'; give the derived column "
                "a new name, or set replace: true to overwrite it"
            )
        source = pd.to_numeric(frame[spec.source], errors="coerce")
        if source.isna().any():
            raise AuditError(f"{path}: column '{spec.source}' (for derived '{name}') has empty or non-numeric values")
        labels = spec.labels or [f"[{a:g}, {b:g})" for a, b in zip(spec.edges, spec.edges[1:], strict=False)]
        binned = pd.cut(source, bins=spec.edges, labels=labels, right=False)
        outside = binned.isna()
        if outside.any():
            raise AuditError(
                f"{path}: derived '{name}': {int(outside.sum())} values of '{spec.source}' fall outside "
                f"the edges [{spec.edges[0]:g}, {spec.edges[-1]:g})"
            )
        frame[name] = binned.astype(str)
    return frame


def render_texts(frame: pd.DataFrame, config: DataConfig, path: Path) -> list[str] | None:
    """Texts for a text model: a column as is, or each row serialised by the template (TabLLM)."""
    if config.text is None:
        return None
    if config.text.column is not None:
        _require(frame, config.text.column, path, "data.text.column")
        column = frame[config.text.column]
        if column.isna().any():
            raise AuditError(f"{path}: text column '{config.text.column}' is empty in {int(column.isna().sum())} rows")
        return column.astype(str).tolist()
    template = config.text.template or ""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise AuditError(f"data.text.template: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field or spec or conversion or field.isdigit() or any(c in field for c in ".[]"):
            raise AuditError(f"data.text.template: placeholder '{{{field}}}' must be a bare column name")
        _require(frame, field, path, "data.text.template")
        fields.append(field)
    columns = {f: frame[f].map(_cell_text).tolist() for f in dict.fromkeys(fields)}
    return [template.format_map({f: values[i] for f, values in columns.items()}) for i in range(len(frame))]


def _cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _split(
    frame: pd.DataFrame, y: np.ndarray, config: DataConfig, seed: int, path: Path, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split; falls back to the label alone when strata are too small."""
    counts = np.bincount(y, minlength=len(classes))
    if min(counts) < 2:
        shown = (
            f"positive: {int(y.sum())}, negative: {int(len(y) - y.sum())}"
            if config.task == "binary"
            else ", ".join(f"{name}: {int(c)}" for name, c in zip(classes, counts, strict=True))
        )
        raise AuditError(f"{path}: need at least 2 rows of each label to split into train and test ({shown})")
    for column in config.split.stratify:
        _require(frame, column, path, "data.split.stratify")
    strata = pd.Series(y.astype(str), index=frame.index)
    for column in config.split.stratify:
        strata = strata + "|" + frame[column].astype(str)
    if strata.value_counts().min() < 2:
        strata = pd.Series(y.astype(str), index=frame.index)
    positions = np.arange(len(frame))
    try:
        train, test = train_test_split(
            positions, test_size=config.split.test_size, random_state=seed, stratify=strata.to_numpy()
        )
    except ValueError as exc:
        raise AuditError(
            f"{path}: cannot split {len(frame)} rows with test_size {config.split.test_size}: {exc}"
        ) from None
    return np.sort(train), np.sort(test)
