"""The stream command end to end with a tiny model, and its errors."""

import json

import numpy as np
import torch
from typer.testing import CliRunner

from conftest import one_row_lora_data
from evostreaming.cli import app
from evostreaming.video.writer import write_mp4

runner = CliRunner()


def _clip(tmp_path):
    frames = (np.full((56, 56, 3), (i * 25) % 255, np.uint8) for i in range(12))
    return write_mp4(frames, tmp_path / "clip.mp4", fps=2)


def test_stream_writes_every_step_to_jsonl(tmp_path):
    out = tmp_path / "steps.jsonl"
    res = runner.invoke(
        app,
        [
            "stream",
            "tiny:qwen2_vl",
            str(_clip(tmp_path)),
            "--fps",
            "1",
            "--query",
            "What is shown?",
            "--query-at",
            "2",
            "--jsonl",
            str(out),
            "--silence-threshold",
            "1.0",
            "--max-new-tokens",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["time"] for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert {"time", "action", "text", "latency_s"} <= set(rows[0])
    assert rows[2]["user_text"] == "What is shown?" and rows[1]["user_text"] is None
    assert all(r["action"] == "respond" for r in rows)  # threshold 1: silent only when certain (never, here)
    # Piped output: one plain line per response, prefixed with its stream time.
    assert "[    2.00s] USER: What is shown?" in res.output


def test_bounded_memory_flag(tmp_path):
    out = tmp_path / "steps.jsonl"
    res = runner.invoke(
        app,
        [
            "stream",
            "tiny:qwen2_vl",
            str(_clip(tmp_path)),
            "--fps",
            "2",
            "--memory-window",
            "1",
            "--silence-threshold",
            "0",
            "--jsonl",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["cache_tokens"] for r in rows[3:]}) == 1


def test_missing_source_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["stream", "tiny:qwen2_vl", str(tmp_path / "missing.mp4")])
    assert res.exit_code == 2
    assert "missing.mp4: no such file" in res.output


def test_unknown_model_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["stream", str(tmp_path), str(_clip(tmp_path))])
    assert res.exit_code == 2
    assert "cannot load model" in res.output


def test_query_times_must_pair_with_queries(tmp_path):
    res = runner.invoke(
        app, ["stream", "tiny:qwen2_vl", str(_clip(tmp_path)), "--query", "a", "--query-at", "1", "--query-at", "2"]
    )
    assert res.exit_code == 2
    assert "one time per query" in res.output


def test_evolve_server_flags_are_checked_before_any_work(tmp_path):
    base = ["evolve", "run", "--model", "pocket", "--world-seed", "0", "--output", str(tmp_path / "o")]
    res = runner.invoke(app, base + ["--server", "http://127.0.0.1:9/v1"])
    assert res.exit_code != 0 and "--server-model" in res.output
    res = runner.invoke(app, base + ["--server", "http://127.0.0.1:9/v1", "--server-model", "m", "--rounds", "2"])
    assert res.exit_code != 0 and "{round}" in res.output
    res = runner.invoke(app, base + ["--silent-keep", "0"])
    assert res.exit_code != 0 and "--silent-keep" in res.output
    res = runner.invoke(app, base + ["--replay", "1.5"])
    assert res.exit_code != 0 and "--replay must be in [0, 1]" in res.output
    res = runner.invoke(app, ["demo", "--replay-annotations", "2", "--output", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--replay-annotations must be in [0, 1]" in res.output
    res = runner.invoke(app, ["demo", "--replay", "1.5", "--output", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--replay must be in [0, 1]" in res.output
    res = runner.invoke(app, base + ["--dtype", "float8"])
    assert res.exit_code != 0 and "--dtype 'float8'" in res.output
    if not torch.cuda.is_available():
        res = runner.invoke(app, base + ["--device", "cuda"])
        assert res.exit_code != 0 and "no CUDA device" in res.output
    res = runner.invoke(app, base + ["--ask-at-start", "forward"])
    assert (
        res.exit_code != 0 and "'forward' is not a task type" in res.output and "anticipatory monitoring" in res.output
    )
    assert not (tmp_path / "o").exists()


def test_train_lora_trains_the_marker_rows_unless_told_not_to(tmp_path):
    import pytest
    from safetensors.torch import load_file

    from evostreaming.models.pocket import pocket_available

    if not pocket_available():
        pytest.skip("pocket weights not committed yet")
    data = one_row_lora_data(tmp_path)
    keys = {}
    for flag in ("--marker-rows", "--no-marker-rows"):
        out = tmp_path / flag
        args = ["train", "lora", "--model", "pocket", "--data", str(data), "--output", str(out), "--batch-size", "1"]
        res = runner.invoke(app, args + [flag])
        assert res.exit_code == 0, res.output
        keys[flag] = [k for k in load_file(str(out / "adapter" / "adapter_model.safetensors")) if "lora_" not in k]
    # PEFT stores one trainable-tokens delta per wrapped layer: the input embedding and the output head
    layers = sorted(k.split(".token_adapter.")[0].rsplit(".", 1)[-1] for k in keys["--marker-rows"])
    assert layers == ["embed_tokens", "lm_head"]
    assert keys["--no-marker-rows"] == []


def test_train_pocket_rejects_bad_fractions_before_any_work(tmp_path):
    out = tmp_path / "pocket"
    res = runner.invoke(app, ["world", "train-pocket", "--output", str(out), "--frames-per-turn", "1.5"])
    assert res.exit_code != 0 and "--frames-per-turn" in res.output
    res = runner.invoke(app, ["world", "train-pocket", "--output", str(out), "--vision-steps", "-1"])
    assert res.exit_code != 0 and "--vision-steps" in res.output
    res = runner.invoke(app, ["world", "train-pocket", "--output", str(out), "--perception-opener", "listing"])
    assert res.exit_code != 0 and "--perception-opener listing" in res.output and "kind_list" in res.output
    for bad in ("stories=0.1", "history=-1", "history=lots", "history", "history=nan"):
        res = runner.invoke(app, ["world", "train-pocket", "--output", str(out), "--mix", bad])
        assert res.exit_code != 0 and f"--mix {bad!r}" in res.output and "history" in res.output, res.output
    zero = [
        a
        for k in ("qa", "caption", "question", "relevance", "task_type", "inventory", "kind_list", "history")
        for a in ("--mix", f"{k}=0")
    ]
    res = runner.invoke(app, ["world", "train-pocket", "--output", str(out), *zero])
    assert res.exit_code != 0 and "every weight is 0" in res.output
    assert not out.exists()
