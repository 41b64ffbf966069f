"""Gold entity types the model has no label for are named in the report's notes, not scored silently."""

from __future__ import annotations

from auditkit.adapters.hf_token import HfTokenAdapter, HfTokenConfig
from auditkit.config import DataConfig
from tests.ner_support import make_tiny_token_bert, vocabulary_texts


def test_a_gold_type_the_model_cannot_output_is_a_note(tmp_path):
    model = make_tiny_token_bert(tmp_path / "model", vocabulary_texts()[:50], ["O", "B-person", "I-person"])
    data = tmp_path / "d.conll"
    data.write_text("Anna B-person\nin O\nRome B-location\n\nBob B-person\n", encoding="utf-8")
    adapter = HfTokenAdapter.load(
        HfTokenConfig(adapter="hf-token", path=model), DataConfig(task="token-classification", path=data)
    )
    notes = adapter.input_notes()
    assert len(notes) == 1 and "(location)" in notes[0] and "scored as missed" in notes[0]
    data.write_text("Anna B-person\nsings O\n", encoding="utf-8")
    same = HfTokenAdapter.load(
        HfTokenConfig(adapter="hf-token", path=model), DataConfig(task="token-classification", path=data)
    )
    assert same.input_notes() == []
