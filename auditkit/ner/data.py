"""Load token-classification audit data: read sentences, check sensitive metadata, split by sentence."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from auditkit.config import DataConfig
from auditkit.errors import AuditError
from auditkit.ner.reader import Sentences, read_sentences
from auditkit.ner.tags import entity_types


@dataclass(frozen=True)
class TokenAuditData:
    """Train and test sentences (split by sentence, never inside one) and what the report states about them."""

    train: Sentences
    test: Sentences
    sha256: str
    sensitive_features: tuple[str, ...]
    path: Path
    scheme: str  # the file's tagging scheme before normalisation to IOB2
    entity_types: tuple[str, ...]


def load_token_data(config: DataConfig, seed: int) -> TokenAuditData:
    path = Path(config.path)
    sentences = read_sentences(
        path,
        config.format,
        tokens=config.tokens,
        tags=config.label or "tags",
        id_column=config.id_column,
        scheme=config.tag_scheme,
    )
    for column in config.sensitive_features:
        _require(sentences.frame, column, path, "data.sensitive_features")
        missing = sentences.frame[column].isna()
        if missing.any():
            first = sentences.lines[int(np.flatnonzero(missing.to_numpy())[0])]
            raise AuditError(
                f"{path}:{first}: sensitive feature '{column}' is missing in {int(missing.sum())} sentences; "
                "fill or drop them before auditing"
            )
    for column in config.split.stratify:
        _require(sentences.frame, column, path, "data.split.stratify")
    if len(sentences) < 4:
        raise AuditError(f"{path}: need at least 4 sentences to split into train and test, found {len(sentences)}")
    train, test = _split(sentences, config, seed)
    return TokenAuditData(
        sentences.subset(train),
        sentences.subset(test),
        sentences.sha256,
        tuple(config.sensitive_features),
        path,
        sentences.scheme,
        tuple(entity_types(sentences.tags)),
    )


def _require(frame: pd.DataFrame, column: str, path: Path, key: str) -> None:
    if column not in frame.columns:
        close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise AuditError(f"{path}: sentence column '{column}' (from {key}) is not in the data{hint}")


def _split(sentences: Sentences, config: DataConfig, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic split of sentence positions, stratified on the configured columns when every stratum allows."""
    positions = np.arange(len(sentences))
    strata = None
    if config.split.stratify:
        keys = sentences.frame[config.split.stratify].astype(str).agg("|".join, axis=1)
        if keys.value_counts().min() >= 2:
            strata = keys.to_numpy()
    train, test = train_test_split(positions, test_size=config.split.test_size, random_state=seed, stratify=strata)
    return sorted(int(i) for i in train), sorted(int(i) for i in test)


def entity_types_of(config: DataConfig) -> list[str]:
    """The entity types of the data file, for checking gate ids such as ``entity_f1[type=person]``."""
    sentences = read_sentences(
        Path(config.path),
        config.format,
        tokens=config.tokens,
        tags=config.label or "tags",
        id_column=config.id_column,
        scheme=config.tag_scheme,
    )
    return entity_types(sentences.tags)
