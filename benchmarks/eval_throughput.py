"""Evaluation throughput: RealStreamEval steps per second of ``eval run`` on a ShapesWorld benchmark,
one process vs N data-parallel processes (``accelerate launch --multi_gpu``: gloo on a CPU machine).

    python benchmarks/eval_throughput.py --streams 48 --processes 2 --json docs/bench/eval_throughput.json

Each configuration runs the real command into a fresh folder; steps per second = the trajectories'
steps over the command's wall time (model loading included, as a user waits for it). Writes JSON and
a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t0


def measure(model: str, bench: Path, work: Path, processes: int) -> dict:
    out = work / f"{model.replace(':', '_')}-{processes}"
    args = ["eval", "run", "--data", str(bench), "--model", model, "--output", str(out), "--timelines", "0"]
    if processes == 1:
        cmd = [sys.executable, "-m", "evostreaming.cli", *args]
    else:
        launcher = str(Path(sys.executable).parent / "accelerate")
        threads = max(1, (os.cpu_count() or 1) // processes)  # the cores shared out, not oversubscribed
        with socket.socket() as sock:  # a free rendezvous port: the default 29500 may be held or in TIME_WAIT
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [launcher, "launch", "--multi_gpu", "--num_processes", str(processes), "--main_process_port", str(port)]
        cmd += ["--num_cpu_threads_per_process", str(threads), "-m", "evostreaming.cli", *args]
    seconds = _run(cmd)
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    steps = sum(len(r["steps"]) for r in rows)
    step_s = [s["latency_s"] for r in rows for s in r["steps"]]
    return {
        "model": model,
        "processes": processes,
        "streams": len(rows),
        "steps": steps,
        "wall_s": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 2),
        "median_step_ms": round(1000 * sorted(step_s)[len(step_s) // 2], 1),
        "cores": os.cpu_count(),
        "overall": json.loads((out / "summary.json").read_text())["overall"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=None, help="repeatable; default: pocket and tiny:qwen2_5_vl")
    p.add_argument("--streams", type=int, default=48)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path("runs/bench/eval_throughput.json"))
    args = p.parse_args()
    models = args.model or ["pocket", "tiny:qwen2_5_vl"]
    from evostreaming.world.bench import make_bench

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_bench(7, args.streams, work / "bench")
        results = [measure(m, work / "bench", work, n) for m in models for n in (1, args.processes)]
    for m in models:
        one, many = (r for r in results if r["model"] == m)
        assert one["overall"] == many["overall"], "a data-parallel run must score as one process"
        many["speedup_vs_one_process"] = round(many["steps_per_s"] / one["steps_per_s"], 2)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"streams": args.streams, "results": results}, indent=2))
    _plot(results, args.json.with_suffix(".png"))
    print(json.dumps(results, indent=2))


def _plot(results: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']}\n{r['processes']} proc" for r in results]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(labels, [r["steps_per_s"] for r in results], color=["tab:blue", "tab:orange"] * (len(results) // 2))
    ax.set_ylabel("RealStreamEval steps / s (wall)")
    ax.set_title("eval run throughput on this machine")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
