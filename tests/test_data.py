from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from auditkit.config import DataConfig
from auditkit.data import load_data
from auditkit.errors import AuditError
from tests.conftest import ROOT, TEMPLATE, base_config


def data_config(path, **changes) -> DataConfig:
    raw = base_config(str(path), "m")["data"]
    raw.update(changes)
    return DataConfig.model_validate(raw)


@pytest.fixture()
def csv_path(tmp_path, credit_frame):
    path = tmp_path / "data.csv"
    credit_frame.to_csv(path, index=False)
    return path


def test_label_mapping_and_ids(csv_path, credit_frame):
    data = load_data(data_config(csv_path), seed=0)
    both = pd.concat([data.train.frame, data.test.frame])
    y = np.concatenate([data.train.y, data.test.y])
    expected = (credit_frame.set_index("applicant_id").loc[both.index, "risk"] == "good").to_numpy()
    assert (y == expected).all()
    assert both.index.is_unique and len(both) == len(credit_frame)
    assert data.label_names == ("bad", "good")


def test_numeric_labels_match_yaml_numbers(tmp_path, credit_frame):
    frame = credit_frame.assign(risk=(credit_frame["risk"] == "good").astype(int))
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_data(data_config(tmp_path / "d.csv", positive_label=1, negative_label=0), seed=0)
    assert data.train.y.sum() == (frame.set_index("applicant_id").loc[data.train.ids, "risk"] == 1).sum()


def test_derived_bins_are_left_closed(csv_path):
    data = load_data(data_config(csv_path), seed=0)
    frame = pd.concat([data.train.frame, data.test.frame])
    assert (frame.loc[frame["age"] < 25, "age_group"] == "young").all()
    assert (frame.loc[frame["age"] >= 25, "age_group"] == "older").all()


def test_split_is_deterministic_stratified_and_disjoint(csv_path):
    a, b = load_data(data_config(csv_path), seed=3), load_data(data_config(csv_path), seed=3)
    c = load_data(data_config(csv_path), seed=4)
    assert list(a.test.ids) == list(b.test.ids)
    assert list(a.test.ids) != list(c.test.ids)
    assert not set(a.train.ids) & set(a.test.ids)
    assert abs(a.test.y.mean() - a.train.y.mean()) < 0.05
    assert len(a.test) == pytest.approx(0.3 * 240, abs=1)


def test_template_renders_each_row(csv_path, credit_frame):
    data = load_data(data_config(csv_path), seed=0)
    row = credit_frame.set_index("applicant_id").loc[data.test.ids[0]]
    assert data.test.texts[0] == TEMPLATE.format(**row.to_dict())


def test_text_column_used_as_is(tmp_path, credit_frame):
    frame = credit_frame.assign(note=[f"note <b>{i}</b>" for i in range(len(credit_frame))])
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_data(data_config(tmp_path / "d.csv", text={"column": "note"}), seed=0)
    assert all(t.startswith("note <b>") for t in data.test.texts)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_formats_give_the_same_data(tmp_path, credit_frame, csv_path, fmt):
    path = tmp_path / f"d.{fmt}"
    if fmt == "parquet":
        credit_frame.to_parquet(path)
    else:
        credit_frame.to_json(path, orient="records", lines=True)
    a, b = load_data(data_config(csv_path), seed=0), load_data(data_config(path), seed=0)
    assert list(a.test.ids) == list(b.test.ids)
    assert a.test.texts == b.test.texts
    assert (a.test.y == b.test.y).all()


def test_duplicate_ids_are_refused(tmp_path, credit_frame):
    frame = credit_frame.copy()
    frame.loc[1, "applicant_id"] = frame.loc[0, "applicant_id"]
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(AuditError, match="repeats"):
        load_data(data_config(tmp_path / "d.csv"), seed=0)


def test_values_outside_bin_edges_are_refused(tmp_path, credit_frame):
    credit_frame.assign(age=credit_frame["age"].where(credit_frame.index != 0, 250)).to_csv(
        tmp_path / "d.csv", index=False
    )
    with pytest.raises(AuditError, match="outside"):
        load_data(data_config(tmp_path / "d.csv"), seed=0)


def test_committed_german_credit_matches_its_preparation_script(tmp_path):
    fresh = tmp_path / "german_credit.csv"
    subprocess.run([sys.executable, str(ROOT / "audits/data/prepare_german_credit.py"), str(fresh)], check=True)
    assert fresh.read_bytes() == (ROOT / "audits/data/german_credit.csv").read_bytes()
    frame = pd.read_csv(ROOT / "audits/data/german_credit.csv")
    assert len(frame) == 1000 and (frame["credit_risk"] == "good").sum() == 700
    assert (frame["sex"] == "female").sum() == 310
