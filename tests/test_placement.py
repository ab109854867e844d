"""Device and precision (models/placement.py): what ``auto`` means here, clear errors for what this
machine cannot do, every input tensor on the model's device in its precision; GPU checks marked ``gpu``."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import offline_logits, tiny
from evostreaming.cli import app
from evostreaming.models import load_model
from evostreaming.models.placement import Placement
from evostreaming.stream.session import SessionConfig, StreamingSession

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only meaning of auto")
def test_auto_means_cpu_float32_and_sdpa_without_cuda():
    p = Placement()
    assert (p.resolved_device(), p.torch_dtype(), p.attn_implementation()) == ("cpu", torch.float32, "sdpa")
    assert Placement(dtype="bfloat16").torch_dtype() == torch.bfloat16


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device; use --device cpu or auto"):
        Placement(device="cuda")
    res = CliRunner().invoke(app, ["stream", "tiny:qwen2_vl", "x.mp4", "--device", "cuda:0"])
    assert res.exit_code == 2 and "no CUDA device" in res.output


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"device": "gpu"}, "--device 'gpu'"),
        ({"dtype": "float8"}, "--dtype 'float8'"),
        ({"attn": "fast"}, "--attn 'fast'"),
        ({"device_map": "balanced"}, "--device-map 'balanced'"),
    ],
)
def test_bad_placements_name_the_flag(kwargs, says):
    with pytest.raises(ValueError, match=says):
        Placement(**kwargs)


def test_a_bfloat16_model_streams_with_its_inputs_cast():
    loaded = load_model("tiny:qwen2_5_vl", dtype="bfloat16", device="cpu", attn="eager")
    assert loaded.model.dtype == torch.bfloat16 and loaded.model.config._attn_implementation == "eager"
    s = StreamingSession(loaded.model, loaded.processor, loaded.adapter, SessionConfig(max_new_tokens=2))
    res = s.step(np.zeros((56, 56, 3), np.uint8), 0.0, "what is it?")
    assert res.action in ("silent", "respond") and s.cache_tokens > 0


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["qwen2_5_vl", "smolvlm"])
def test_gpu_session_in_bfloat16_matches_one_offline_forward(family):
    tm = tiny(family)
    model = tm.model.to("cuda", torch.bfloat16)
    s = StreamingSession(model, tm.processor, config=SessionConfig(), keep_inputs=True)
    frames = [np.full((56, 56, 3), 40 * k, np.uint8) for k in range(4)]
    for k, frame in enumerate(frames):
        s.push_frame(frame, "what changed?" if k == 1 else None)
        s.append_reply("<silent>")
    s.sync()
    ref = offline_logits(s, model)
    inc = torch.cat(s.logit_log)
    assert inc.device.type == "cuda" and inc.shape == ref.shape
    assert (inc.softmax(-1) - ref.softmax(-1)).abs().max().item() < 2e-2  # bf16 tolerance on probabilities
    tm.model.to("cpu", torch.float32)


@pytest.mark.gpu
def test_gpu_lora_step_runs_and_moves_the_adapter(tmp_path):
    from conftest import one_row_lora_data
    from evostreaming.evolve.pool import load_frames
    from evostreaming.train.lora import LoraTrainConfig, train_lora

    data = one_row_lora_data(tmp_path)
    out = train_lora("pocket", data, tmp_path / "lora", LoraTrainConfig(batch_size=1), load_frames=load_frames)
    assert (out / "adapter_model.safetensors").exists()
