"""EvoStreaming beyond the main job: a second round, and the random-relevance ablation.

    python benchmarks/evostreaming_rounds.py --work runs/demo --json docs/bench/evostreaming_rounds.json

Reuses the main job's folder (``make demo`` writes runs/demo: benchmark, vanilla and round-1
evaluations; missing parts are run first, with the same configuration), then:

1. round 2: M(2) = pocket + round-1 adapter (merged) generates, annotates and rolls out its own
   trajectories again, and a new LoRA gives M(3), evaluated on the same held-out streams;
2. ablation: one round with the same number of trajectories, but the model's relevance labels
   replaced by random ones at the same rate (``--random-relevance``).

Every variant reports RealStreamEval (overall, regimes, R_ans, premature answers) and held-out
offline metrics. Writes the JSON and a PNG; every step resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("runs/demo"))
    ap.add_argument("--json", type=Path, default=Path("docs/bench/evostreaming_rounds.json"))
    ap.add_argument("--quick", action="store_true", help="the --quick main-job sizes")
    args = ap.parse_args()

    from rich.console import Console

    from evostreaming.evolve.main_job import DemoConfig, check_resumable, evaluate_streaming, offline, run_main_job
    from evostreaming.evolve.pipeline import run_evolution
    from evostreaming.evolve.pool import world_pool

    console = Console(stderr=True)
    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    t0 = time.time()
    if not (args.work / "results.json").exists():
        run_main_job(args.work, cfg, console)
    main_job = json.loads((args.work / "results.json").read_text())
    # continue with the settings the main job in this folder used
    fields = DemoConfig.__dataclass_fields__
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in main_job["config"].items() if k in fields}
    cfg = DemoConfig(**saved)
    check_resumable(args.work, cfg)  # the folder's finished steps must come from these weights
    bench = args.work / "bench"
    pool = world_pool(cfg.world_seed, cfg.pool_videos)

    evo = cfg.evolve

    variants = {
        "vanilla": main_job["vanilla"],
        "round_1": main_job["round_1"],
    }
    # round 2 continues the main job's evolution folder (round 1 is found done and skipped)
    console.print("[bold]round 2[/]: M(2) = pocket + round-1 adapter generates its own trajectories")
    adapters = run_evolution("pocket", pool, args.work / "evolve", evo(2), console)
    merged = args.work / "evolve" / "round-1" / "merged"
    r2 = evaluate_streaming(str(merged), adapters[1], bench, args.work / "eval-round-2", console)
    variants["round_2"] = {
        "summary": {k: r2[k] for k in ("overall", "regimes", "tasks", "diagnostics")},
        "offline": _strip(offline(str(merged), adapters[1], args.work / "offline-round-2.json", cfg.offline_counts())),
        "stage_report": _stages(args.work / "evolve" / "round-2"),
    }
    console.print("[bold]ablation[/]: one round with random relevance labels at the model's rate")
    rnd = run_evolution("pocket", pool, args.work / "evolve-random", evo(1, random_relevance=True), console)[0]
    ra = evaluate_streaming("pocket", rnd, bench, args.work / "eval-random-relevance", console)
    variants["random_relevance"] = {
        "summary": {k: ra[k] for k in ("overall", "regimes", "tasks", "diagnostics")},
        "offline": _strip(offline("pocket", rnd, args.work / "offline-random-relevance.json", cfg.offline_counts())),
        "stage_report": _stages(args.work / "evolve-random" / "round-1"),
    }
    variants["round_1"]["stage_report"] = _stages(args.work / "evolve" / "round-1")
    out = {"variants": variants, "config": cfg.__dict__, "minutes": (time.time() - t0) / 60}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    _print(variants, console)
    _plot(variants, args.json.with_suffix(".png"))
    console.print(f"wrote {args.json} and {args.json.with_suffix('.png')}")


def _strip(off: dict) -> dict:
    return {k: v for k, v in off.items() if k != "failures"}


def _stages(round_dir: Path) -> dict:
    path = round_dir / "stage_report.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _print(variants: dict, console) -> None:
    from rich.table import Table

    table = Table(title="EvoStreaming variants (pocket model, held-out ShapesWorld)")
    for col in ("variant", "Overall", "RTVP", "BT", "FAR", "R_ans", "premature", "offline QA %", "relevance %"):
        table.add_column(col, justify="right")
    for name, v in variants.items():
        s, o = v["summary"], v["offline"]
        table.add_row(
            name,
            f"{s['overall']:.2f}",
            *(f"{s['regimes'].get(k, 0.0):.2f}" for k in ("RTVP", "BT", "FAR")),
            f"{s['diagnostics']['r_ans']:.3f}",
            str(s["diagnostics"]["premature_samples"]),
            f"{100 * o['qa_accuracy']:.1f}",
            f"{100 * o['relevance_accuracy']:.1f}",
        )
    console.print(table)


def _plot(variants: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = ["Overall", "RTVP", "BT", "FAR"]
    x = np.arange(len(keys) + 1)
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (name, v) in enumerate(variants.items()):
        s = v["summary"]
        vals = [s["overall"]] + [s["regimes"].get(k, 0.0) for k in keys[1:]] + [100 * v["offline"]["qa_accuracy"]]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=name.replace("_", " "))
    ax.set_xticks(x, keys + ["offline QA %"])
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("EvoStreaming rounds and the random-relevance ablation (pocket model)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
