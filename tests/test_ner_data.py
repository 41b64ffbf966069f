"""Token-classification data: CoNLL and JSONL readers, tagging schemes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditkit.errors import AuditError
from auditkit.ner.reader import read_sentences
from auditkit.ner.tags import detect_scheme, spans, tags_from_spans, to_iob2

ROOT = Path(__file__).resolve().parents[1]
WNUT = ROOT / "audits" / "data" / "wnut16_train.conll"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_reads_sentences_and_skips_docstart(tmp_path):
    path = write(tmp_path, "d.conll", "-DOCSTART- O\n\nAnna B-PER\nlives O\nin O\nRome B-LOC\n\n\nHi O\nBob B-PER\n")
    data = read_sentences(path)
    assert data.ids == ["sent-1", "sent-2"]
    assert data.tokens[0] == ["Anna", "lives", "in", "Rome"]
    assert data.tags[1] == ["O", "B-PER"]
    assert data.lines == [3, 9]
    assert data.scheme == "iob2"


def test_conll_takes_first_and_last_column(tmp_path):
    path = write(tmp_path, "d.txt", "Anna NNP B-NP B-PER\nsings VBZ B-VP O\n")
    data = read_sentences(path, "conll")
    assert data.tokens == [["Anna", "sings"]] and data.tags == [["B-PER", "O"]]


@pytest.mark.parametrize(
    ("scheme", "tags", "expected"),
    [
        ("iob1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]),
        (
            "bioes",
            ["B-PER", "E-PER", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"],
            ["B-PER", "I-PER", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"],
        ),
        ("iob2", ["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),
    ],
)
def test_schemes_normalise_to_iob2(scheme, tags, expected):
    assert detect_scheme([tags]) == scheme
    assert to_iob2(tags, scheme) == expected


def test_normalised_tags_match_seqeval_entities():
    from seqeval.metrics.sequence_labeling import get_entities

    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "I-ORG"]
    ours = [(t, s, e - 1) for s, e, t in spans(to_iob2(iob1, "iob1"))]
    assert ours == get_entities(to_iob2(iob1, "iob1"))
    assert tags_from_spans(7, spans(to_iob2(iob1, "iob1"))) == to_iob2(iob1, "iob1")


@pytest.mark.parametrize(
    ("text", "scheme", "line"),
    [
        ("Anna B-PER\nsings O\nloud X-ADJ\n", "auto", 3),
        ("Anna B-PER\n\nin O\nRome I-LOC\n", "iob2", 4),
        ("Anna B-PER\nRome S-LOC\n", "iob2", 2),
        ("New B-LOC\nYork O\n", "bioes", 1),
        ("Anna PER\n", "auto", 1),
    ],
)
def test_bad_tag_is_one_line_naming_file_and_line(tmp_path, text, scheme, line):
    path = write(tmp_path, "bad.conll", text)
    with pytest.raises(AuditError) as info:
        read_sentences(path, scheme=scheme)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and "\n" not in message


def test_jsonl_with_metadata_and_ids(tmp_path):
    rows = [
        {"sid": "a", "tokens": ["Anna", "sings"], "tags": ["B-PER", "O"], "dialect": "x", "extra": [1]},
        {"sid": "b", "tokens": ["in", "Rome"], "tags": ["O", "B-LOC"], "dialect": "y"},
    ]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    data = read_sentences(path, id_column="sid")
    assert data.ids == ["a", "b"]
    assert data.frame.loc["b", "dialect"] == "y"
    assert "extra" not in data.frame.columns


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "2 words but 'tags' has 1 tags"),
        ({"tokens": ["a"]}, "column 'tags'"),
        ({"tokens": "a b", "tags": ["O", "O"]}, "list of non-empty strings"),
        ({"tokens": ["Anna"], "tags": ["B_PER"]}, "(word 1): tag 'B_PER'"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, record, needle):
    good = {"tokens": ["ok"], "tags": ["O"]}
    path = write(tmp_path, "d.jsonl", json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(AuditError) as info:
        read_sentences(path)
    assert str(info.value).startswith(f"{path}:2") and needle in str(info.value)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(AuditError, match="no sentences"):
        read_sentences(write(tmp_path, "e.conll", "\n\n"))


def test_committed_wnut16_matches_its_documented_size():
    """audits/data/README.md: 2,394 tweets, 46,469 tokens, 1,496 entities of the ten WNUT-16 types."""
    data = read_sentences(WNUT)
    assert len(data) == 2394
    assert sum(len(t) for t in data.tokens) == 46469
    entities = [s for tags in data.tags for s in spans(tags)]
    assert len(entities) == 1496
    assert {s[2] for s in entities} == {
        "person",
        "geo-loc",
        "company",
        "facility",
        "product",
        "musicartist",
        "movie",
        "sportsteam",
        "tvshow",
        "other",
    }


def test_a_line_with_more_columns_than_the_file_is_refused(tmp_path):
    path = write(tmp_path, "d.conll", "I O\nlove O\nNew B-LOC\nYork I-LOC\n\nin O\nNew York B-LOC\n")
    with pytest.raises(AuditError) as info:
        read_sentences(path)
    message = str(info.value)
    assert message.startswith(f"{path}:7: 3 columns where the file's first token line has 2"), message


def test_conll_columns_are_split_on_spaces_and_tabs_only(tmp_path):
    path = write(tmp_path, "d.conll", "Anna\u00a0Maria\tB-PER\nsaid\u2028hi O\n")
    data = read_sentences(path)
    assert data.tokens == [["Anna\u00a0Maria", "said\u2028hi"]] and data.tags == [["B-PER", "O"]]


def test_a_stray_inside_tag_in_an_iob2_file_is_refused_not_read_as_iob1(tmp_path):
    text = "Anna B-PER\nlives O\nin O\nNew B-LOC\nYork I-LOC\n\nhello O\nRome I-LOC\n"
    path = write(tmp_path, "d.conll", text)
    with pytest.raises(AuditError) as info:
        read_sentences(path)
    message = str(info.value)
    assert message.startswith(f"{path}:8: ") and "data.tag_scheme: iob1" in message, message
    as_iob1 = read_sentences(path, scheme="iob1")  # asked for: every I- after O opens an entity
    assert as_iob1.scheme == "iob1" and as_iob1.tags[1] == ["O", "B-LOC"]


def test_an_iob1_file_is_still_detected():
    assert detect_scheme([["I-PER", "O", "I-LOC", "I-LOC", "B-LOC"]]) == "iob1"
    assert detect_scheme([["I-PER", "O"], ["B-LOC", "O"]]) == "iob2"
