"""Model loading: tiny specs, local folders, and clear errors."""

import json

import pytest

from conftest import one_row_lora_data, tiny
from evostreaming.models import adapter_for, build_tiny, family_names
from evostreaming.models.loading import ModelLoadError, load_model


@pytest.mark.parametrize("family", family_names())
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


def test_an_adapter_is_refused_on_a_model_it_was_not_trained_on(tmp_path):
    import shutil

    from evostreaming.models.loading import check_adapter_base
    from evostreaming.models.pocket import WEIGHTS_DIR, pocket_available

    if not pocket_available():
        pytest.skip("pocket weights not committed")
    other = tmp_path / "round-1-merged"  # as a round-2 adapter's base: other weights
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"\0" * (WEIGHTS_DIR / "model.safetensors").stat().st_size)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(other)}))
    with pytest.raises(ModelLoadError, match=r"trained on .*round-1-merged.*--model"):
        load_model("pocket", adapter_dir=str(adapter))
    # a copy of the same weights elsewhere is the same model
    shutil.copy(WEIGHTS_DIR / "model.safetensors", other / "model.safetensors")
    check_adapter_base(adapter, WEIGHTS_DIR)
    # a base that cannot be checked (a hub id, or a folder since moved) is let through
    for base in ("Qwen/Qwen2.5-VL-7B-Instruct", str(tmp_path / "gone")):
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
        check_adapter_base(adapter, WEIGHTS_DIR)


def test_an_adapter_is_refused_once_the_weights_it_was_trained_on_change(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from evostreaming.evolve.pool import load_frames
    from evostreaming.models.pocket import WEIGHTS_DIR, pocket_available
    from evostreaming.train.lora import LoraTrainConfig, train_lora

    if not pocket_available():
        pytest.skip("pocket weights not committed")
    pocket = tmp_path / "pocket"
    shutil.copytree(WEIGHTS_DIR, pocket)
    data = one_row_lora_data(tmp_path)
    adapter = train_lora(
        f"pocket:{pocket}", data, tmp_path / "lora", LoraTrainConfig(batch_size=1), load_frames=load_frames
    )
    assert (adapter / "base_weights.json").is_file()
    load_model(f"pocket:{pocket}", adapter_dir=str(adapter))  # the weights it was trained on: fine
    # the folder gets new weights (as the committed pocket model does with each release)
    weights = load_file(str(pocket / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] * 0.5
    save_file(weights, str(pocket / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="trained on other weights than those now in"):
        load_model(f"pocket:{pocket}", adapter_dir=str(adapter))
