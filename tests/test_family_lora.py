"""LoRA on every family: the adapter's targets reach the language model's projections (attention,
linear attention, experts) and nothing of the vision tower, and one optimizer step on a streaming
conversation changes the LoRA weights only."""

import numpy as np
import pytest
import torch

from evostreaming.models import family_names
from evostreaming.models.family import FAMILIES
from evostreaming.models.tiny import build_tiny
from evostreaming.stream.session import SessionConfig, StreamingSession
from evostreaming.train.config import LoraTrainConfig
from evostreaming.train.lora import lora_model


@pytest.mark.parametrize("family", family_names())
def test_one_lora_step_trains_the_language_model_only(family):
    tm = build_tiny(family)  # its own copy: LoRA wraps the model in place, the shared twins stay untouched
    adapter = FAMILIES.get(family).adapter
    model = lora_model(tm.model, adapter(), LoraTrainConfig(train_marker_rows=False))
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    assert not [n for n in lora if "visual" in n or "vision" in n]  # the vision tower stays frozen
    wrapped = {n.split(".lora_")[0] for n in lora}
    if "qwen3_5" in family:  # the hybrid's linear-attention projections are adapted too
        assert any("linear_attn.in_proj_qkv" in n for n in wrapped)
    if adapter.lora_target_parameters:  # and a mixture of experts' fused weights
        assert any("experts" in n for n in wrapped)

    # a short conversation, as training feeds it: two frames, a question, a reply; loss on every token
    s = StreamingSession(tm.model, tm.processor, config=SessionConfig(), keep_inputs=True)
    rng = np.random.default_rng(0)
    s.push_frame(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8), "What is it?")
    s.append_reply("A red square.")
    s.push_frame(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8))
    s.sync()
    ids, mm = s.cached_inputs()
    inputs = s.adapter.offline_inputs(tm.model, ids, mm)
    before = {n: p.detach().clone() for n, p in lora.items()}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(lora.values(), lr=1e-2)
    model.train()
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    loss.backward()
    opt.step()
    assert any(not torch.equal(before[n], p) for n, p in lora.items())
    assert all(torch.equal(frozen[n], p) for n, p in model.named_parameters() if not p.requires_grad)
