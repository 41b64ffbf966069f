"""A streamed dataset (``data.streaming``): a Parquet file or folder described, never loaded.

Only the files' footers are read here (columns, row counts) and their bytes hashed in chunks; the
rows are read once, batch by batch, when a count-capable adapter counts them
(:mod:`auditkit.streaming.counts`). Every row is audited: nothing is held out, nothing is trained.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from auditkit.config import DataConfig
from auditkit.errors import AuditError


@dataclass(frozen=True)
class StreamedSplit:
    """Rows of a Parquet file or folder, known by their files and count, not by their values."""

    name: str
    path: Path
    files: tuple[str, ...]
    n_rows: int
    classes: tuple[str, ...]  # (negative, positive)
    fingerprint: str  # stands for split_sha256: which rows and labels (every row of these bytes)

    def __len__(self) -> int:
        return self.n_rows


@dataclass(frozen=True)
class StreamedData:
    """The streamed counterpart of :class:`auditkit.data.AuditData`: an empty train split and every row as test."""

    train: StreamedSplit
    test: StreamedSplit
    sha256: str
    sensitive_features: tuple[str, ...]
    path: Path
    label_names: tuple[str, ...]
    non_feature_columns: frozenset[str]
    label_column: str
    task: str = "binary"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.label_names


def open_dataset(path: Path, source: str) -> ds.Dataset:
    """The Parquet dataset at ``path`` (a file or a folder of files); AuditError when it is not one."""
    if not path.exists():
        raise AuditError(f"{source}: {path} does not exist")
    try:
        data = ds.dataset(path, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise AuditError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from None
    if not data.files:
        raise AuditError(f"{path}: the folder holds no Parquet files")
    return data


def require_columns(data: ds.Dataset, columns: dict[str, str]) -> None:
    """Every file must hold every column (name -> the config key that names it): files of a folder
    may differ, so each file's own footer is read, and the error names the file."""
    for fragment in data.get_fragments():
        try:
            names = set(fragment.physical_schema.names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise AuditError(f"{fragment.path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from None
        for column, key in columns.items():
            if column not in names:
                raise AuditError(f"{fragment.path}: column '{column}' (from {key}) is not in this file")


def load_streamed(config: DataConfig, labels: tuple[str, str]) -> StreamedData:
    """Check the files' columns and count their rows from the footers; read no row. ``labels`` are the
    (negative, positive) label names as the in-memory data names them."""
    path = Path(config.path)
    data = open_dataset(path, "data.path")
    assert config.label is not None
    columns = {config.label: "data.label", **{c: "data.sensitive_features" for c in config.sensitive_features}}
    if config.id_column is not None:
        columns[config.id_column] = "data.id_column"
    require_columns(data, columns)
    for column in config.sensitive_features:
        if column in (config.label, config.id_column):
            role = "label" if column == config.label else "id column"
            raise AuditError(f"data.sensitive_features: '{column}' is the {role}, not an attribute of the people")
    n_rows = sum(f.count_rows() for f in data.get_fragments())
    if n_rows == 0:
        raise AuditError(f"{path}: the dataset has no rows")
    digest = files_sha256(path, tuple(data.files))
    fingerprint = hashlib.sha256(f"every row\t{digest}\t{config.label}\t{labels[1]}\t{labels[0]}".encode()).hexdigest()
    files = tuple(data.files)
    return StreamedData(
        StreamedSplit("train", path, files, 0, labels, fingerprint),
        StreamedSplit("test", path, files, n_rows, labels, fingerprint),
        digest,
        tuple(config.sensitive_features),
        path,
        labels,
        frozenset({config.label, *([config.id_column] if config.id_column else [])}),
        config.label,
    )


def files_sha256(path: Path, files: tuple[str, ...]) -> str:
    """Content hash read in chunks: a file's bytes (what an in-memory audit of it records), or a
    folder's files (relative path and bytes, in sorted order); computed once for the same stamps."""
    stamps = tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in sorted(files))
    return _hash(str(path), stamps)


@functools.lru_cache(maxsize=8)
def _hash(root: str, stamps: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    base = Path(root)
    for file, _, _ in stamps:
        if base.is_dir():
            digest.update(Path(file).relative_to(base).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()
