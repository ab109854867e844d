"""Data-parallel evaluation: ``accelerate launch --multi_gpu --num_processes 2`` (gloo on a CPU) runs
``eval run`` as two shards and merges them; the result equals a one-process run, with no sample duplicated or missing,
and a shard left behind by a killed process resumes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port

pytestmark = pytest.mark.slow
ACCELERATE = Path(sys.executable).parent / "accelerate"


def _eval(bench: Path, out: Path, processes: int):
    args = ["eval", "run", "--data", str(bench), "--model", "tiny:qwen2_vl", "--output", str(out)]
    args += ["--timelines", "0", "--max-new-tokens", "4"]
    if processes == 1:
        cmd = [sys.executable, "-m", "evostreaming.cli", *args]
    else:
        # on a CPU machine, --multi_gpu starts N gloo processes (accelerate's --cpu alone starts one: it needs mpirun)
        cmd = [
            str(ACCELERATE),
            "launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--main_process_port",
            str(free_port()),  # never the default 29500: another run may hold it or leave it in TIME_WAIT
            "-m",
            "evostreaming.cli",
            *args,
        ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def _trajectories(out: Path):
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    return [(r["id"], [(s["step"], s["action"], s["text"]) for s in r["steps"]]) for r in rows]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from evostreaming.world.bench import make_bench

    folder = tmp_path_factory.mktemp("bench")
    make_bench(3, 6, folder)
    return folder


@pytest.fixture(scope="module")
def one_process(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    return out, _eval(bench, out, 1)


def test_two_processes_equal_one(bench, one_process, tmp_path):
    one_out, one = one_process
    two = _eval(bench, tmp_path / "two", 2)
    assert two["overall"] == one["overall"] and two["samples"] == one["samples"]
    ids = [i for i, _ in _trajectories(tmp_path / "two")]
    assert len(ids) == len(set(ids)) == 6  # none duplicated, none missing
    assert _trajectories(tmp_path / "two") == _trajectories(one_out)
    assert not list((tmp_path / "two").glob("trajectories.rank*.jsonl"))  # merged
    assert json.loads((tmp_path / "two" / "run.json").read_text())["processes"] == 2


def test_a_killed_ranks_shard_resumes(bench, one_process, tmp_path):
    one_out, one = one_process
    out = tmp_path / "two"
    _eval(bench, out, 2)
    rows = (out / "trajectories.jsonl").read_text().splitlines()
    # as a kill would leave it: the merged file gone, rank 0's shard with one finished sample and a cut line
    (out / "trajectories.jsonl").unlink()
    finished = next(r for r in rows if json.loads(r)["id"] == json.loads(rows[0])["id"])
    (out / "trajectories.rank0.jsonl").write_text(finished + "\n" + finished[: len(finished) // 2])
    shutil.rmtree(out / "timelines", ignore_errors=True)
    again = _eval(bench, out, 2)
    assert again["samples"] == one["samples"] and _trajectories(out) == _trajectories(one_out)


def _evolve(out: Path, processes: int):
    args = ["evolve", "run", "--model", "pocket", "--world-seed", "5", "--n-videos", "8", "--n-samples", "8"]
    args += ["--questions-per-video", "1", "--generation-batch-size", "2", "--epochs", "1", "--output", str(out)]
    cmd = [sys.executable, "-m", "evostreaming.cli", *args]
    if processes > 1:
        cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", str(processes)]
        cmd += ["--main_process_port", str(free_port()), "-m", "evostreaming.cli", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out / "round-1"


STAGE_FILES = ["taxonomy.jsonl", "questions.jsonl", "relevance.jsonl", "rollouts.jsonl", "train.jsonl"]


def test_evolve_stages_shared_by_two_processes_equal_one(tmp_path):
    """The local-backend stages split their chunks between two gloo processes; the merged stage files
    are byte-identical to one process's, no rank file is left, and LoRA (DDP, each batch shared out)
    trains the same adapter up to float summation order."""
    from safetensors.torch import load_file

    one, two = _evolve(tmp_path / "one", 1), _evolve(tmp_path / "two", 2)
    for name in STAGE_FILES:
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    rows = [json.loads(line) for line in (one / "taxonomy.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len({r["video"] for r in rows}) == 8
    assert not list(two.glob("*.rank*.jsonl"))
    assert json.loads((two / "stage_report.json").read_text()) == json.loads((one / "stage_report.json").read_text())
    a, b = (
        load_file(one / "adapter" / "adapter_model.safetensors"),
        load_file(two / "adapter" / "adapter_model.safetensors"),
    )
    # LoRA shares each batch between the processes: the same gradients summed in another order. The
    # first step's logged loss (every sequence, same weights) is the same; under AdamW a gradient
    # element near zero can flip sign from float noise, which moves that weight by at most 2 x lr.
    first = [json.loads((d / "train_log.jsonl").read_text().splitlines()[0])["loss"] for d in (one, two)]
    assert abs(first[0] - first[1]) <= 1e-5
    assert a.keys() == b.keys()
    lr = json.loads((one / "lora_config.json").read_text())["lr"]
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 2.5 * lr
    moved = sum(int(((a[k] - b[k]).abs() > 1e-6).sum()) for k in a) / sum(a[k].numel() for k in a)
    assert moved < 0.1
    log = (two / "train_log.jsonl").read_text().splitlines()
    assert len(log) == len((one / "train_log.jsonl").read_text().splitlines())  # one writer
