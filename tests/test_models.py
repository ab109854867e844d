"""Model loading: tiny specs, local folders, and clear errors."""

import json

import pytest

from conftest import tiny
from evostreaming.models.adapters import adapter_for
from evostreaming.models.registry import ModelLoadError, load_model
from evostreaming.models.tiny import BUILDERS, build_tiny


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_tiny_model_roundtrips_through_save_and_local_path_loading(family, tmp_path):
    tm = tiny(family)
    tm.model.save_pretrained(tmp_path)
    tm.processor.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), dtype="float32")
    assert type(loaded.model) is type(tm.model)
    assert loaded.adapter.family == family
    assert loaded.processor.tokenizer.get_vocab() == tm.processor.tokenizer.get_vocab()
    assert list(tmp_path.glob("*.safetensors"))  # weights saved as safetensors, not pickle


def test_unsupported_architecture_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="model_type 'gpt2', which has no streaming adapter"):
        load_model(str(tmp_path))


def test_unknown_tiny_family():
    with pytest.raises(ValueError, match="no tiny model for family 'nope'"):
        build_tiny("nope")


def test_adapter_for_rejects_unknown_models():
    from transformers import GPT2Config, GPT2LMHeadModel

    text_only = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32, n_positions=16))
    with pytest.raises(ValueError, match="model type 'gpt2' has no streaming adapter"):
        adapter_for(text_only)
