"""Trustworthy runs (docs/reliability.md): a score is never silently wrong, a resume never mixes two
jobs, one writer per folder, and a user error is one line with exit code 2. Each case runs the real
command (``python -m evostreaming.cli``, a subprocess) on files made here."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import one_row_lora_data
from evostreaming.eval.schema import GoldAnswer, Sample, UserTurn, write_samples
from evostreaming.video.writer import write_mp4

CLI = [sys.executable, "-m", "evostreaming.cli"]


def run(*args, timeout=300):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert "Traceback" not in res.stderr, res.stderr
    return " ".join(lines)


def _bench(folder, n=4, seconds=8, sample_id=lambda i: f"s{i}"):
    """n streams of one task (so Overall is a plain mean), no 'duration': each lasts as its video."""
    samples = []
    for i in range(n):
        clip = write_mp4(
            (np.full((32, 32, 3), (15 * k) % 250, np.uint8) for k in range(seconds * 2)),
            folder / "videos" / f"c{i}.mp4",
            fps=2,
        )
        samples.append(
            Sample(
                id=sample_id(i),
                video=str(clip.relative_to(folder)),
                task="OCR",
                regime="RTVP",
                turns=[UserTurn(time=0.0, text="how many?")],
                answers=[GoldAnswer(time=2.0, answer="3", judge="number")],
            )
        )
    write_samples(samples, folder / "samples.jsonl")
    return folder


def _eval(data, out, *extra):
    return run("eval", "run", "--data", data, "--output", out, "--timelines", "0", *extra)


# -- failures are counted, shown and retried -----------------------------------------------------
def test_failed_streams_count_as_zero_are_shown_and_retried_after_the_fix(tmp_path):
    data = _bench(tmp_path / "bench")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for i in (1, 3):  # two videos are missing
        shutil.move(data / "videos" / f"c{i}.mp4", hidden / f"c{i}.mp4")
    out = tmp_path / "run"
    res = _eval(data, out, "--baseline", "oracle")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples_total"] == 4 and summary["samples_failed"] == 2
    assert summary["overall"] == pytest.approx(50.0)  # failures count as 0
    assert summary["overall_successful"] == pytest.approx(100.0)
    assert set(summary["failed_samples"]) == {"s1", "s3"} and "no such file" in summary["failed_samples"]["s1"]
    assert "2 of 4 samples failed" in " ".join(res.stderr.split())
    # the fix, then the same command: failed samples are retried, finished ones kept
    for i in (1, 3):
        shutil.move(hidden / f"c{i}.mp4", data / "videos" / f"c{i}.mp4")
    res = _eval(data, out, "--baseline", "oracle")
    assert res.returncode == 0, res.stderr
    assert "2 failed before: retrying them" in " ".join(res.stderr.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples_failed"] == 0 and summary["overall"] == pytest.approx(100.0)


def test_too_many_failures_end_the_run_with_exit_1_and_keep_what_ran(tmp_path):
    data = _bench(tmp_path / "bench")
    (data / "videos" / "c0.mp4").unlink()
    out = tmp_path / "run"
    res = _eval(data, out, "--baseline", "oracle", "--max-failures", "0")
    assert res.returncode == 1
    assert "more than --max-failures 0" in _error_line(res)
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s0"] and rows[0]["error"]


# -- a resume never mixes two jobs ---------------------------------------------------------------
def test_a_rerun_with_other_settings_is_refused_naming_the_difference(tmp_path):
    data = _bench(tmp_path / "bench", n=2)
    out = tmp_path / "run"
    assert _eval(data, out, "--baseline", "oracle").returncode == 0
    res = _eval(data, out, "--baseline", "always-silent")
    assert res.returncode == 2
    line = _error_line(res)
    assert 'baseline: "oracle" -> "always-silent"' in line and "--overwrite" in line
    assert json.loads((out / "summary.json").read_text())["overall"] == pytest.approx(100.0)  # untouched
    # the same job resumes (nothing to do); --overwrite starts anew
    assert _eval(data, out, "--baseline", "oracle").returncode == 0
    res = _eval(data, out, "--baseline", "always-silent", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "summary.json").read_text())["overall"] == pytest.approx(0.0)


def test_changed_data_is_refused_and_rescoring_with_another_judge_is_allowed_and_recorded(tmp_path):
    data = _bench(tmp_path / "bench", n=2)
    out = tmp_path / "run"
    assert _eval(data, out, "--baseline", "oracle").returncode == 0
    with open(data / "samples.jsonl", "a") as f:
        f.write("\n")  # any byte of the data file changes the job
    res = _eval(data, out, "--baseline", "oracle")
    assert res.returncode == 2 and "data_sha256" in _error_line(res)
    res = run("eval", "report", out, "--judge", "embedding", "--timelines", "0")
    assert res.returncode == 0, res.stderr
    judges = [json.loads(line)["judge"] for line in (out / "reports.jsonl").read_text().splitlines()]
    assert judges == ["rule", "embedding"]


def test_train_lora_with_other_data_is_refused(tmp_path):
    first = one_row_lora_data(tmp_path)
    out = tmp_path / "lora"
    res = run("train", "lora", "--model", "pocket", "--data", first, "--output", out, "--batch-size", "1")
    assert res.returncode == 0, res.stderr
    other = tmp_path / "other.jsonl"
    row = json.loads(first.read_text())
    row["turns"][0]["reply"] = "3"
    other.write_text(json.dumps(row) + "\n")
    res = run("train", "lora", "--model", "pocket", "--data", other, "--output", out, "--batch-size", "1")
    assert res.returncode == 2 and "data_sha256" in _error_line(res)


def test_train_lora_resumed_equals_the_uninterrupted_run_with_one_log_line_per_step(tmp_path):
    from safetensors.torch import load_file

    from evostreaming.evolve.pool import load_frames
    from evostreaming.train.lora import LoraTrainConfig, train_lora

    row = json.loads(one_row_lora_data(tmp_path).read_text())
    data = tmp_path / "three.jsonl"
    data.write_text("".join(json.dumps({**row, "question": f"q{i}"}) + "\n" for i in range(3)))
    cfg = LoraTrainConfig(batch_size=1, checkpoint_every=1, lr=1e-3)  # dropout 0.05 draws random masks
    whole = train_lora("pocket", data, tmp_path / "whole", cfg, load_frames=load_frames)
    part = tmp_path / "part"
    train_lora("pocket", data, part, cfg, max_steps_this_run=1, load_frames=load_frames)
    with open(part / "train_log.jsonl", "a") as f:  # killed after logging step 2, before its checkpoint
        f.write(json.dumps({"step": 2, "loss": 9.9, "lr": 0.0}) + "\n")
    resumed = train_lora("pocket", data, part, cfg, load_frames=load_frames)
    a = load_file(str(whole / "adapter_model.safetensors"))
    b = load_file(str(resumed / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    steps = [json.loads(line)["step"] for line in (part / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


# -- one writer per folder -----------------------------------------------------------------------
LOCKER = """
import sys, time
from evostreaming.utils.jobs import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until told (or killed)
"""


def test_a_folder_in_use_is_refused_with_its_holder_and_a_killed_holders_lock_is_taken_over(tmp_path):
    data = _bench(tmp_path / "bench", n=2)
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = _eval(data, out, "--baseline", "oracle")
        assert res.returncode == 2
        assert f"in use by pid {holder.pid} on {socket.gethostname()}" in _error_line(res)
        assert not (out / "trajectories.jsonl").exists()
        os.kill(holder.pid, signal.SIGKILL)  # a crashed job leaves its lock file behind
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert (out / ".lock").exists()
    res = _eval(data, out, "--baseline", "oracle")
    assert res.returncode == 0, res.stderr


# -- validation at the door, one error style -----------------------------------------------------
@pytest.mark.parametrize(
    "args, says",
    [
        (["--fps", "0"], "--fps must be a positive"),
        (["--fps", "-1"], "--fps must be a positive"),
        (["--limit", "0"], "--limit is a number of samples >= 1"),
        (["--limit", "-3"], "--limit is a number of samples >= 1"),
        (["--memory-window", "-2"], "--memory-window is seconds >= 0"),
        (["--silence-threshold", "1.5"], "--silence-threshold is a probability"),
        (["--dtype", "float8"], "--dtype 'float8'"),
        (["--benchmark", "nope"], "--benchmark 'nope'"),
    ],
)
def test_eval_run_checks_every_flag_before_a_model_loads(tmp_path, args, says):
    data = _bench(tmp_path / "bench", n=1)
    # a model that could never load: the error must be about the flag, so the check came first
    res = _eval(data, tmp_path / "run", "--model", "nobody/no-such-model", *args)
    assert res.returncode == 2 and says in _error_line(res)
    assert not (tmp_path / "run").exists()


def test_stream_checks_fps_before_the_model_loads(tmp_path):
    clip = write_mp4((np.zeros((32, 32, 3), np.uint8) for _ in range(4)), tmp_path / "c.mp4", fps=2)
    for fps in ("0", "-1"):
        res = run("stream", "nobody/no-such-model", clip, "--fps", fps)
        assert res.returncode == 2 and "--fps must be a positive" in _error_line(res)


def test_evolve_run_rejects_zero_counts_before_any_work(tmp_path):
    base = ["evolve", "run", "--model", "pocket", "--world-seed", "0", "--output", tmp_path / "evo"]
    for flag, says in (("--n-samples", "--n-samples must be >= 1"), ("--batch-size", "--batch-size must be >= 1")):
        res = run(*base, flag, "0")
        assert res.returncode == 2 and says in _error_line(res)
    res = run(*base, "--lr", "nan")
    assert res.returncode == 2 and "--lr must be a finite number" in _error_line(res)
    assert not (tmp_path / "evo").exists()


def test_an_unwritable_output_is_one_line_before_any_work(tmp_path):
    data = _bench(tmp_path / "bench", n=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = _eval(data, blocker / "run", "--baseline", "oracle")
    assert res.returncode == 2 and "cannot write there" in _error_line(res)
    res = run("world", "eval-pocket", "--n-per-kind", "1", "--json", blocker / "m.json")
    assert res.returncode == 2 and "a-file is a file, not a folder; choose another --json" in _error_line(res)


def test_debug_shows_the_traceback_that_a_user_error_otherwise_hides(tmp_path):
    data = _bench(tmp_path / "bench", n=1)
    plain = _eval(data, tmp_path / "r", "--model", "nobody/no-such-model")
    assert plain.returncode == 2 and "cannot load model" in _error_line(plain)
    debug = run(
        "--debug", "eval", "run", "--data", data, "--output", tmp_path / "r2", "--model", "nobody/no-such-model"
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ModelLoadError" in debug.stderr


# -- bad benchmark files name file, row and field ------------------------------------------------
def test_times_past_the_streams_end_are_errors_naming_the_sample(tmp_path):
    data = _bench(tmp_path / "bench", n=1, seconds=8)
    row = json.loads((data / "samples.jsonl").read_text())
    row["answers"][0]["time"] = 30.0  # the video lasts 8 s
    (data / "samples.jsonl").write_text(json.dumps(row) + "\n")
    res = _eval(data, tmp_path / "run", "--baseline", "oracle")
    line = _error_line(res)
    assert res.returncode == 2 and "sample 's0'" in line and "answers[0].time 30.0 s is after the stream's end" in line
    row["duration"] = 6.0
    (data / "samples.jsonl").write_text(json.dumps(row) + "\n")
    res = _eval(data, tmp_path / "run", "--baseline", "oracle")
    assert res.returncode == 2 and "samples.jsonl:1" in _error_line(res) and "duration 6 s" in _error_line(res)


@pytest.mark.parametrize("gt", [-1, 4, "B"])
def test_ovo_gt_outside_the_options_is_an_error(tmp_path, gt):
    from evostreaming.eval.benchmarks.ovo.mapping import load_ovo
    from evostreaming.eval.schema import SampleFormatError

    row = {"id": 7, "task": "OCR", "video": "v.mp4", "question": "q?", "options": ["a", "b", "c", "d"]}
    (tmp_path / "ovo.json").write_text(json.dumps([{**row, "gt": gt, "realtime": 10}]))
    with pytest.raises(SampleFormatError, match=r"row 0 \(id 7\).*field 'gt'"):
        load_ovo(tmp_path / "ovo.json")


def test_score_ovo_names_a_row_missing_a_field_and_refuses_missing_tasks(tmp_path):
    ann = [
        {"id": 1, "task": "OCR", "video": "a.mp4", "question": "q", "options": ["x", "y"], "gt": 0, "realtime": 3},
        {"id": 2, "task": "EPM", "video": "b.mp4", "question": "q", "options": ["x", "y"], "gt": 1, "realtime": 3},
    ]
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "rt.json").write_text(json.dumps({"realtime": [{"id": 1, "task": "OCR", "response": "A"}]}))
    res = run("eval", "score-ovo", "--annotations", tmp_path / "ann.json", "--predictions", preds)
    assert res.returncode == 2 and "rt.json: realtime[0] (id 1): field 'ground_truth' is missing" in _error_line(res)
    rows = [{"id": 1, "task": "OCR", "response": "A", "ground_truth": "A"}]
    (preds / "rt.json").write_text(json.dumps({"realtime": rows}))
    res = run("eval", "score-ovo", "--annotations", tmp_path / "ann.json", "--predictions", preds)
    assert res.returncode == 2 and "no predictions for task(s) EPM" in _error_line(res)
    res = run("eval", "score-ovo", "--annotations", tmp_path / "ann.json", "--predictions", preds, "--allow-missing")
    assert res.returncode == 0 and "overall (partial: no EPM)" in res.stdout


# -- judges fail loudly --------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_judge_stops_the_run_before_any_stream(tmp_path):
    data = _bench(tmp_path / "bench", n=1)
    judge = f"openai:http://127.0.0.1:{_closed_port()}/v1,model=judge"
    res = _eval(data, tmp_path / "run", "--baseline", "oracle", "--judge", judge)
    assert res.returncode == 2 and "does not answer" in _error_line(res)
    assert not (tmp_path / "run" / "trajectories.jsonl").exists()


def test_consecutive_judge_failures_trip_the_breaker_instead_of_scoring_zeros():
    from evostreaming.eval.judges.llm import JudgeUnavailable, OpenAIJudge

    judge = OpenAIJudge(f"http://127.0.0.1:{_closed_port()}/v1", "m", retries=0, max_consecutive_failures=3)
    gold = GoldAnswer(time=0, answer="a red cup", judge="text")
    assert judge("x", gold) is None and judge("y", gold) is None  # recorded, not scored
    with pytest.raises(JudgeUnavailable, match="3 times in a row"):
        judge("z", gold)
    assert len(judge.failures) == 3


# -- file names and pools ------------------------------------------------------------------------
def test_a_sample_id_never_writes_outside_the_output_folder(tmp_path):
    data = _bench(tmp_path / "bench", n=1, sample_id=lambda i: "../../escape")
    out = tmp_path / "deep" / "run"
    res = _eval(data, out, "--baseline", "oracle").returncode
    assert res == 0
    res = run("eval", "report", out, "--timelines", "-1")
    assert res.returncode == 0, res.stderr
    pngs = list((out / "timelines").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].parent == out / "timelines"
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "escape.png").exists()


def test_an_unreadable_video_in_a_pool_is_skipped_and_reported(tmp_path):
    from evostreaming.evolve.backends import LocalBackend
    from evostreaming.evolve.pool import folder_pool
    from evostreaming.evolve.prompts import load_prompts
    from evostreaming.evolve.stages import StageContext, stage_taxonomy
    from evostreaming.models.pocket import load_pocket

    pool_dir = tmp_path / "pool"
    write_mp4((np.full((56, 56, 3), 90, np.uint8) for _ in range(8)), pool_dir / "good.mp4", fps=2)
    (pool_dir / "broken.mp4").write_bytes(b"this is no video")
    model, processor = load_pocket()
    ctx = StageContext(LocalBackend(model, processor), load_prompts(), tmp_path, 1, "pocket")
    rows = stage_taxonomy(ctx, folder_pool(pool_dir))
    assert [r["video"] for r in rows] == [str(pool_dir / "good.mp4")]
    report = json.loads((tmp_path / "stage_report.json").read_text())["taxonomy"]
    assert list(report["skipped_videos"]) == [str(pool_dir / "broken.mp4")]


def test_evolve_run_with_new_settings_is_refused_instead_of_rewriting_the_round(tmp_path):
    out = tmp_path / "evo"
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    base = ["evolve", "run", "--model", "pocket", "--world-seed", "0", "--n-videos", "2", "--output", out]
    base += ["--server", dead, "--server-model", "m"]
    res = run(*base, "--n-samples", "4")
    assert res.returncode == 2 and "is the server up" in _error_line(res)  # the job started, then failed
    assert (out / "job.json").exists()
    res = run(*base, "--n-samples", "8")
    line = _error_line(res)
    assert res.returncode == 2 and "holds a different 'evolve run' job" in line and "n_samples: 4 -> 8" in line
