"""``real:<checkpoint>``: random-weight twins with the released configurations (models/real/table.py)."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText

from conftest import offline_logits
from evostreaming.models.placement import Placement
from evostreaming.models.real.build import real_config
from evostreaming.models.real.table import REAL_CHECKPOINTS
from evostreaming.models.real.vocab import LAYOUTS, layout_tokenizer
from evostreaming.models.specs import ModelLoadError, parse_spec
from evostreaming.stream.session import SessionConfig, StreamingSession

# The checkpoints issue 15 names: each must be in the table.
REQUIRED = [
    "Qwen/Qwen2-VL-2B-Instruct",
    "Qwen/Qwen2-VL-7B-Instruct",
    "Qwen/Qwen2.5-VL-3B-Instruct",
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "Qwen/Qwen3-VL-2B-Instruct",
    "Qwen/Qwen3-VL-8B-Instruct",
    "OpenGVLab/InternVL3_5-1B-HF",
    "OpenGVLab/InternVL3_5-8B-HF",
    "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
    "llava-hf/llava-onevision-qwen2-7b-ov-hf",
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
]

# Parameter counts as the hub pages publish them ("Model size"), in billions: an independent check
# that the table's widths, depths, vocabulary and tying add up to the released model.
PUBLISHED_PARAMS_B = {
    "Qwen/Qwen2-VL-2B-Instruct": 2.21,
    "Qwen/Qwen2-VL-7B-Instruct": 8.29,
    "Qwen/Qwen2.5-VL-3B-Instruct": 3.75,
    "Qwen/Qwen2.5-VL-7B-Instruct": 8.29,
    "Qwen/Qwen3-VL-2B-Instruct": 2.13,
    "Qwen/Qwen3-VL-8B-Instruct": 8.77,
    "OpenGVLab/InternVL3_5-1B-HF": 1.06,
    "OpenGVLab/InternVL3_5-8B-HF": 8.53,
    "llava-hf/llava-onevision-qwen2-0.5b-ov-hf": 0.894,
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": 8.03,
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct": 0.256,
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct": 2.25,
}

# The image placeholder each family's processor expands, and where the config names its id.
IMAGE_TOKEN = {
    "qwen2_vl": ("<|image_pad|>", "image_token_id"),
    "qwen2_5_vl": ("<|image_pad|>", "image_token_id"),
    "qwen3_vl": ("<|image_pad|>", "image_token_id"),
    "internvl": ("<IMG_CONTEXT>", "image_token_id"),
    "llava_onevision": ("<image>", "image_token_index"),
    "smolvlm": ("<image>", "image_token_id"),
}


def test_the_table_covers_the_checkpoints_users_run():
    assert set(REQUIRED) <= set(REAL_CHECKPOINTS)
    for entry in REAL_CHECKPOINTS.values():
        assert entry.source == f"https://huggingface.co/{entry.checkpoint}/blob/main/config.json"


@pytest.mark.parametrize("checkpoint", REQUIRED)
def test_twin_has_the_published_parameter_count(checkpoint):
    with torch.device("meta"):  # shapes only: an 8B model costs no memory here
        model = AutoModelForImageTextToText.from_config(real_config(REAL_CHECKPOINTS[checkpoint]))
    n = sum(p.numel() for p in model.parameters()) / 1e9
    assert n == pytest.approx(PUBLISHED_PARAMS_B[checkpoint], rel=0.005)


@pytest.mark.parametrize("checkpoint", [c for c in REQUIRED if REAL_CHECKPOINTS[c].family == "internvl"])
def test_internvl_twin_frames_are_one_tile_at_the_vision_towers_size(checkpoint):
    """A frame becomes one tile at the vision config's image size, and its token count equals what
    the tower's pixel shuffle yields: (size / patch)^2 * ratio^2 (a 384-pixel tile crashed the 8B twin)."""
    from PIL import Image

    from evostreaming.models.families.internvl import InternVLAdapter
    from evostreaming.models.real.build import _processor

    entry = REAL_CHECKPOINTS[checkpoint]
    tok = layout_tokenizer(LAYOUTS[entry.tokens])
    config = real_config(entry, tok)
    adapter = InternVLAdapter()  # the session's own encoding path, on a 16:9 frame
    seg = adapter.encode(_processor(entry, tok), adapter.frame(), Image.fromarray(np.zeros((360, 640, 3), np.uint8)))
    out = {"pixel_values": seg.mm_kwargs["pixel_values"], "input_ids": seg.input_ids}
    side = config.vision_config.image_size[0]
    patch = config.vision_config.patch_size[0]
    assert tuple(out["pixel_values"].shape) == (1, 3, side, side)
    expected = (side // patch) ** 2 * config.downsample_ratio**2
    assert int((out["input_ids"] == config.image_token_id).sum()) == expected == 256


@pytest.mark.parametrize("checkpoint", REQUIRED)
def test_twin_tokenizer_has_the_released_special_token_ids(checkpoint):
    entry = REAL_CHECKPOINTS[checkpoint]
    tok = layout_tokenizer(LAYOUTS[entry.tokens])
    config = real_config(entry, tok)
    token, key = IMAGE_TOKEN[entry.family]
    assert tok.convert_tokens_to_ids(token) == getattr(config, key)
    assert len(tok) <= config.get_text_config().vocab_size  # every id has an embedding row
    assert tok.eos_token_id == config.get_text_config().eos_token_id
    # Text round-trips through the byte-level BPE, special tokens kept whole.
    text = "<|im_start|>user\nWhat happens next?"
    if entry.tokens == "smolvlm":
        text = "<|im_start|>User: What happens next?"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_qwen_ids_are_the_released_ones():
    # Released Qwen2-VL / Qwen2.5-VL vocabulary: these ids appear in every Qwen-VL config.json.
    tok = layout_tokenizer(LAYOUTS["qwen2"])
    ids = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>"])
    assert ids == [151644, 151645, 151652, 151655] and len(tok) == 151665


def test_unknown_real_checkpoint_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="(?s)no real-size twin for .Qwen/Qwen9-VL.*Qwen2.5-VL-7B-Instruct"):
        parse_spec("real:Qwen/Qwen9-VL").load(Placement(device="cpu"))
    with pytest.raises(ModelLoadError, match="real: needs a checkpoint"):
        parse_spec("real").load(Placement(device="cpu"))


@pytest.mark.slow
def test_smallest_twin_streams_frames_exactly():
    """SmolVLM2-256M at its released size: frames, a question, a forced reply and silent decisions,
    each token's logits equal to one offline forward over the whole conversation."""
    model, processor = parse_spec("real:HuggingFaceTB/SmolVLM2-256M-Video-Instruct").load(Placement(device="cpu"))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(256e6, rel=0.005)
    cfg = SessionConfig(max_new_tokens=2, silence_threshold=0.0)  # threshold 0: always silent
    s = StreamingSession(model, processor, config=cfg, keep_inputs=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        s.push_frame(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), "What is happening?" if k == 1 else None)
        if k == 1:
            s.append_reply("A cat walks in.")
        else:
            assert s.decide().silent
    s.sync()
    # 64 tokens per 512-pixel frame (SmolVLM2-256M's image_seq_len), three frames cached.
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    ids, _ = s.cached_inputs()
    assert int((ids == image_id).sum()) == 3 * 64
    ref = offline_logits(s, model)
    inc = torch.cat(s.logit_log)
    assert inc.shape == ref.shape
    assert (inc - ref).abs().max().item() <= 1e-3


def _short_clips(folder, n=2, frames=12):
    from evostreaming.video.writer import write_mp4

    folder.mkdir()
    for v in range(n):
        clip = []
        for k in range(frames):
            f = np.full((224, 224, 3), 40 + 60 * v, np.uint8)
            f[90:120, (15 * k) % 190 : (15 * k) % 190 + 30] = (255, 0, 0)
            clip.append(f)
        write_mp4(clip, folder / f"clip{v}.mp4", fps=1.0)
    return folder


@pytest.mark.slow
def test_evolve_runs_every_stage_on_the_smallest_real_twin(tmp_path):
    """`evolve run --model real:SmolVLM2-256M --prompts real` on two 12-second clips, on the CPU. Random
    weights write no usable question, so the first run must stop with a clear error naming the stage;
    with hand-written questions in questions.jsonl the same command resumes through relevance,
    roll-out, standardize and LoRA on the twin."""
    import json
    import subprocess
    import sys

    out = tmp_path / "evo"
    cmd = [sys.executable, "-m", "evostreaming.cli", "evolve", "run"]
    cmd += ["--model", "real:HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "--prompts", "real"]
    cmd += ["--videos", str(_short_clips(tmp_path / "clips")), "--n-samples", "4", "--questions-per-video", "1"]
    cmd += ["--epochs", "1", "--output", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 2, first.stderr[-2000:]
    assert "round 1 produced no training conversations: the questions stage kept no question" in first.stderr
    rows = [json.loads(line) for line in (out / "round-1" / "taxonomy.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["task_type"] for r in rows)  # closed choices: always a task type

    qfile = out / "round-1" / "questions.jsonl"
    rows = [json.loads(line) for line in qfile.read_text().splitlines()]
    assert rows and all(r["questions"] == [] for r in rows)
    qfile.write_text("".join(json.dumps({**r, "questions": ["Where is the red square moving?"]}) + "\n" for r in rows))
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    report = json.loads((out / "round-1" / "stage_report.json").read_text())
    assert report["relevance"]["pairs"] == len(rows) and report["relevance"]["unparsed"] == 0
    assert report["rollout"]["trajectories"] == len(rows) and report["rollout"]["steps"] == 6 * len(rows)
    assert report["standardize"]["conversations"] == len(rows)
    assert (out / "round-1" / "adapter" / "adapter_model.safetensors").exists()


def test_minicpmv_4_5_remote_code_is_refused_with_the_native_alternative(tmp_path):
    """MiniCPM-V 4.5's remote-code checkpoint (model_type minicpmv) is refused before any code runs,
    with or without --trust-remote-code, naming the native 4.6/4.7 families."""
    import json

    folder = tmp_path / "MiniCPM-V-4_5"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "minicpmv", "auto_map": {"AutoModel": "x.Y"}}))
    for trust in (False, True):
        with pytest.raises(ModelLoadError, match="minicpmv4_6, minicpmv4_7"):
            parse_spec(str(folder)).load(Placement(device="cpu"), trust_remote_code=trust)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "checkpoint", ["Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen3-VL-8B-Instruct", "OpenGVLab/InternVL3_5-8B-HF"]
)
def test_real_size_twin_streams_in_bfloat16_on_a_gpu(checkpoint):
    """A 7-8B twin in bf16 on CUDA: frames, a question, a reply and silent steps enter the cache
    incrementally, and each token's next-token distribution matches one offline forward (bf16
    tolerance on probabilities; the logit gap and argmax agreement are printed for the record)."""
    model, processor = parse_spec(f"real:{checkpoint}").load(Placement(device="cuda", dtype="bfloat16"))
    s = StreamingSession(model, processor, config=SessionConfig(silence_threshold=0.0), keep_inputs=True)
    rng = np.random.default_rng(0)
    for k in range(4):
        s.push_frame(rng.integers(0, 255, (448, 448, 3), dtype=np.uint8), "What is happening?" if k == 1 else None)
        s.append_reply("A cat walks in." if k == 1 else "<silent>")
    s.sync()
    ref = offline_logits(s, model)
    inc = torch.cat(s.logit_log).float()
    assert inc.device.type == "cuda" and inc.shape == ref.shape
    prob_gap = (inc.softmax(-1) - ref.softmax(-1)).abs().max().item()
    agree = (inc.argmax(-1) == ref.argmax(-1)).float().mean().item()
    print(
        f"{checkpoint}: {ref.shape[0]} tokens, max |dlogit| {(inc - ref).abs().max().item():.3f}, "
        f"max |dprob| {prob_gap:.2e}, argmax agreement {agree:.4f}"
    )
    assert prob_gap < 2e-2


@pytest.mark.gpu
@pytest.mark.parametrize(
    "checkpoint", ["Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen3-VL-8B-Instruct", "OpenGVLab/InternVL3_5-8B-HF"]
)
def test_real_size_twin_batched_in_bfloat16_on_a_gpu(checkpoint):
    """Three sessions of a 7-8B twin packed in one forward per step on CUDA in bf16 (variable-length
    attention): each session's next-token distributions match one offline forward over its own
    conversation, as the serial path's do (same bf16 tolerance)."""
    from evostreaming.stream.engine import BatchEngine

    model, processor = parse_spec(f"real:{checkpoint}").load(Placement(device="cuda", dtype="bfloat16"))
    engine = BatchEngine(model)
    configs = [SessionConfig(silence_threshold=t, max_new_tokens=3) for t in (0.0, 1.0, 0.0)]
    sessions = [engine.attach(StreamingSession(model, processor, config=c, keep_inputs=True)) for c in configs]
    assert all(s.kv.pooled for s in sessions)
    rng = np.random.default_rng(0)
    for k in range(4):
        jobs = [
            (s, rng.integers(0, 255, (448, 448 - 56 * i, 3), dtype=np.uint8), float(k)) for i, s in enumerate(sessions)
        ]
        results = engine.run([(*job, "What is happening?" if k == 1 else None) for job in jobs])
        assert not any(isinstance(r, Exception) for r in results), results
    assert engine.stats.packed_forwards < engine.stats.chunks  # several sessions per forward
    for s in sessions:
        ref = offline_logits(s, model)
        inc = torch.cat(s.logit_log).float()
        assert inc.shape == ref.shape
        prob_gap = (inc.softmax(-1) - ref.softmax(-1)).abs().max().item()
        print(f"{checkpoint} batched: {ref.shape[0]} tokens, max |dprob| {prob_gap:.2e}")
        assert prob_gap < 2e-2
