"""Remote-policy throughput: RealStreamEval steps per second of ``eval run --policy openai:...`` and
``--policy realtime:...`` against our own server, at ``--concurrency`` 1, 2, 4, beside the local model.

    python benchmarks/remote_eval.py --streams 48 --json docs/bench/remote_eval.json

Starts ``evostreaming serve MODEL`` on 127.0.0.1 for evaluation (unbounded memory, no frame-rate cap,
room for every stream), builds a ShapesWorld benchmark, then runs the real ``eval run`` command once
per configuration into a fresh folder. Steps per second = the trajectories' steps over the command's
wall time (start-up included, as a user waits for it). Each remote run's actions are compared with
the local run's (agreement) and its Overall reported. Writes JSON and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLI = [sys.executable, "-m", "evostreaming.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model: str, port: int, sessions: int) -> subprocess.Popen:
    cmd = [*CLI, "serve", model, "--port", str(port), "--memory-window", "0", "--max-fps", "1000"]
    args = [*cmd, "--max-sessions", str(sessions)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:  # until it listens
        if "Uvicorn running on" in line:
            break
    else:
        raise SystemExit(f"the server did not start: {' '.join(cmd)}")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc


def _eval(bench: Path, out: Path, *args: str) -> tuple[float, list[dict], dict]:
    cmd = [*CLI, "eval", "run", "--data", str(bench), "--output", str(out), "--timelines", "0", *args]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    return wall, rows, json.loads((out / "summary.json").read_text())


def _actions(rows: list[dict]) -> dict:
    return {(r["id"], s["step"]): s["action"] for r in rows for s in r["steps"]}


def measure(label: str, bench: Path, out: Path, args: list[str], concurrency: int, local: dict | None) -> dict:
    wall, rows, summary = _eval(bench, out, *args, *(["--concurrency", str(concurrency)] if concurrency else []))
    steps = sum(len(r["steps"]) for r in rows)
    step_ms = sorted(1000 * s["latency_s"] for r in rows for s in r["steps"])
    row = {
        "policy": label,
        "concurrency": concurrency or 1,
        "streams": len(rows),
        "steps": steps,
        "failed": sum(1 for r in rows if r.get("error")),
        "wall_s": round(wall, 2),
        "steps_per_s": round(steps / wall, 2),
        "median_step_ms": round(step_ms[len(step_ms) // 2], 1),
        "overall": summary["overall"],
    }
    if local is not None:
        mine = _actions(rows)
        row["agreement_with_local"] = round(sum(mine.get(k) == v for k, v in local.items()) / len(local), 4)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pocket")
    p.add_argument("--streams", type=int, default=48)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--json", type=Path, default=Path("runs/bench/remote_eval.json"))
    args = p.parse_args()
    from evostreaming.world.bench import make_bench

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_bench(7, args.streams, work / "bench")
        bench = work / "bench"
        _eval(bench, work / "warm", "--model", args.model, "--limit", "1")  # files and imports warm
        results.append(measure("local session", bench, work / "local", ["--model", args.model], 0, None))
        local = _actions([json.loads(x) for x in (work / "local" / "trajectories.jsonl").read_text().splitlines()])
        port = _free_port()
        server = _serve(args.model, port, max(args.concurrency))
        try:
            policies = {
                "openai:": f"openai:http://127.0.0.1:{port}/v1,model={args.model}",
                "realtime:": f"realtime:ws://127.0.0.1:{port}/v1/realtime",
            }
            for label, spec in policies.items():
                for n in args.concurrency:
                    out = work / f"{label[:-1]}-{n}"
                    results.append(measure(label, bench, out, ["--policy", spec], n, local))
        finally:
            server.terminate()
            server.wait(timeout=30)
    for label in ("openai:", "realtime:"):
        rows = [r for r in results if r["policy"] == label]
        base = next(r for r in rows if r["concurrency"] == min(args.concurrency))
        for r in rows:
            r["ratio_to_concurrency_1"] = round(r["steps_per_s"] / base["steps_per_s"], 2)
    info = {"model": args.model, "streams": args.streams, "cores": os.cpu_count(), "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(info, indent=2))
    _plot(results, args.json.with_suffix(".png"))


def _plot(results: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"local session": "tab:gray", "openai:": "tab:blue", "realtime:": "tab:green"}
    labels = [r["policy"] if r["policy"] == "local session" else f"{r['policy']}\nx{r['concurrency']}" for r in results]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(labels, [r["steps_per_s"] for r in results], color=[colors[r["policy"]] for r in results])
    ax.set_ylabel("RealStreamEval steps / s (wall)")
    ax.set_title("eval run against our server, by policy and --concurrency (one machine)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
