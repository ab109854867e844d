"""`eval run --batch-streams N` against one stream at a time, in one process, on a ShapesWorld benchmark.

    python benchmarks/batch_streams.py --model tiny:qwen2_5_vl --streams 24 --batch 1 8 \
        --json docs/bench/batch_streams.json

Each setting runs the real command into a fresh folder; steps per second = the trajectories' steps
over the command's wall time (model loading included). The trajectories of every setting must be
identical (batching is exact), which the script checks. Writes JSON and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(model: str, bench: Path, out: Path, batch: int) -> tuple[dict, dict]:
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(bench), "--model", model]
    cmd += ["--output", str(out), "--timelines", "0", "--batch-streams", str(batch)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    steps = sum(len(r["steps"]) for r in rows)
    trajectories = {r["id"]: [(s["action"], s["text"]) for s in r["steps"]] for r in rows}
    result = {
        "model": model,
        "batch_streams": batch,
        "streams": len(rows),
        "steps": steps,
        "responses": sum(a == "respond" for t in trajectories.values() for a, _ in t),
        "wall_s": round(seconds, 2),
        "steps_per_s": round(steps / seconds, 2),
        "cores": os.cpu_count(),
        "overall": json.loads((out / "summary.json").read_text())["overall"],
    }
    return result, trajectories


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny:qwen2_5_vl")
    p.add_argument("--streams", type=int, default=24)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--json", type=Path, default=Path("runs/bench/batch_streams.json"))
    args = p.parse_args()
    from evostreaming.world.bench import make_bench

    results, seen = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_bench(7, args.streams, work / "bench")
        for b in args.batch:
            result, trajectories = measure(args.model, work / "bench", work / f"b{b}", b)
            results.append(result)
            seen.append(trajectories)
            print(json.dumps(result), flush=True)
    same = all(t == seen[0] for t in seen)
    for r in results:
        r["speedup_vs_one_stream"] = round(r["steps_per_s"] / results[0]["steps_per_s"], 2)
    summary = {"streams": args.streams, "identical_trajectories": same, "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    _plot(results, args.json.with_suffix(".png"))
    if not same:
        raise SystemExit("the batched runs' trajectories differ from one stream at a time")


def _plot(results: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([f"--batch-streams {r['batch_streams']}" for r in results], [r["steps_per_s"] for r in results])
    ax.set_ylabel("RealStreamEval steps / s (wall)")
    ax.set_title(f"eval run, {results[0]['model']}, {results[0]['cores']} cores")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
