"""Does an adapter know *when* to speak? P(silence marker) at event steps vs quiet steps.

    python benchmarks/silence_discrimination.py --bench runs/demo/bench \
        --adapter none --adapter runs/demo/evolve/round-1/adapter \
        --json docs/bench/silence_discrimination.json

For every forward stream of a ShapesWorld benchmark ("tell me when ...", counting, "each change"),
the request is asked at step 0 and every later step is scored with the session's silence
decision, the context kept silent (as in training). Steps are split by whether they hold the event
the request is about (ground truth from the scene, used here only to measure). Reports, per
adapter and task, mean P(silent) on event and quiet steps and the AUC (probability that an event
step gets a lower P(silent) than a quiet one; 0.5 = no discrimination). Writes JSON and a PNG.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def auc(event: list[float], quiet: list[float]) -> float:
    """P(an event step has a lower P(silent) than a quiet step), ties counted half."""
    e, q = np.asarray(event)[:, None], np.asarray(quiet)[None, :]
    return float((e < q).mean() + 0.5 * (e == q).mean())


def measure(model_spec: str, adapter: str | None, bench: Path) -> dict:
    from evostreaming.eval.schema import load_samples
    from evostreaming.models.loading import load_model
    from evostreaming.stream.session import SessionConfig, StreamingSession
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.language import parse_question, relevant_at
    from evostreaming.world.scene import render_frames

    loaded = load_model(model_spec, dtype="float32", adapter_dir=adapter)
    event: dict[str, list[float]] = {}
    quiet: dict[str, list[float]] = {}
    for s in load_samples(bench / "samples.jsonl"):
        if s.regime != "FAR" or s.meta.get("world") != "shapesworld":
            continue
        scene = generate_scene(s.meta["seed"])
        q = parse_question(s.turns[0].text)
        # threshold 0: always silent, so every step sees the context training used
        session = StreamingSession(loaded.model, loaded.processor, loaded.adapter, SessionConfig(silence_threshold=0.0))
        for k, (t, frame) in enumerate(render_frames(scene, fps=s.fps)):
            r = session.step(frame, t, s.turns[0].text if k == 0 else None)
            if k:
                (event if relevant_at(scene, q, t) else quiet).setdefault(s.task, []).append(r.silence_prob)
    if not event:
        raise SystemExit(f"{bench}: no ShapesWorld forward streams (make one with `evostreaming world make-bench`)")
    out = {
        task: {
            "event_steps": len(event[task]),
            "quiet_steps": len(quiet.get(task, [])),
            "p_silent_event": float(np.mean(event[task])),
            "p_silent_quiet": float(np.mean(quiet.get(task, [np.nan]))),
            "auc": auc(event[task], quiet.get(task, [])) if quiet.get(task) else float("nan"),
        }
        for task in sorted(event)
    }
    all_e, all_q = sum(event.values(), []), sum(quiet.values(), [])
    out["all"] = {
        "event_steps": len(all_e),
        "quiet_steps": len(all_q),
        "p_silent_event": float(np.mean(all_e)),
        "p_silent_quiet": float(np.mean(all_q)),
        "auc": auc(all_e, all_q),
    }
    out["_hist"] = {"event": all_e, "quiet": all_q}
    return out


def write_oracle(path: Path, n: int, first_seed: int = 30_000_000) -> None:
    """A diagnostic upper bound, not EvoStreaming: ``n`` training conversations for forward requests
    on training-pool scenes with ground-truth timing and answers (silent elsewhere, a repeated
    answer silenced), in the ``train.jsonl`` format."""
    import random

    from evostreaming.stream.decision import DEFAULT_SILENCE_MARKER
    from evostreaming.stream.session import DEFAULT_SYSTEM_PROMPT
    from evostreaming.world.bench import REGIME, sample_for_scene
    from evostreaming.world.generator import generate_scene
    from evostreaming.world.language import answer_at, parse_question, relevant_at
    from evostreaming.world.scene import STEP_S, render_frames

    rows, seed = [], first_seed
    while len(rows) < n:
        seed += 1
        scene = generate_scene(seed)
        if REGIME[scene.task_type] != "FAR":
            continue
        request = sample_for_scene(scene, "", random.Random(seed)).turns[0].text
        q = parse_question(request)
        turns, last = [], None
        for k in range(len(render_frames(scene))):
            a = answer_at(scene, q, k * STEP_S) if relevant_at(scene, q, k * STEP_S) else None
            reply = DEFAULT_SILENCE_MARKER if a is None or a == last else a
            last = a if reply != DEFAULT_SILENCE_MARKER else last
            turns.append({"user_text": request if k == 0 else None, "reply": reply})
        rows.append(
            {
                "video": f"world:{seed}",
                "question": request,
                "fps": 0.5,
                "system": DEFAULT_SYSTEM_PROMPT,
                "marker": DEFAULT_SILENCE_MARKER,
                "turns": turns,
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", type=Path, default=Path("runs/demo/bench"))
    ap.add_argument("--model", default="pocket")
    ap.add_argument("--adapter", action="append", default=None, help="an adapter folder or 'none'; repeatable")
    ap.add_argument("--json", type=Path, default=Path("docs/bench/silence_discrimination.json"))
    ap.add_argument("--write-oracle", type=Path, help="write ground-truth forward conversations here and stop")
    ap.add_argument("--n", type=int, default=600, help="conversations for --write-oracle")
    args = ap.parse_args()
    if args.write_oracle:
        write_oracle(args.write_oracle, args.n)
        print(f"wrote {args.n} conversations to {args.write_oracle}")
        return
    if not (args.bench / "samples.jsonl").exists():
        raise SystemExit(
            f"{args.bench}/samples.jsonl not found: run `make demo` or `evostreaming world make-bench` first"
        )
    t0 = time.time()
    results = {}
    for a in args.adapter or ["none"]:
        adapter = None if a == "none" else a
        results[a] = measure(args.model, adapter, args.bench)
        print(f"{a}: AUC {results[a]['all']['auc']:.3f}", flush=True)
    hists = {a: r.pop("_hist") for a, r in results.items()}
    out = {"model": args.model, "bench": str(args.bench), "adapters": results, "minutes": (time.time() - t0) / 60}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    _plot(hists, results, args.json.with_suffix(".png"))
    print(f"wrote {args.json} and {args.json.with_suffix('.png')}")


def _plot(hists: dict, results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(hists), figsize=(4.5 * len(hists), 3.5), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, (name, h) in zip(axes[0], hists.items(), strict=True):
        ax.hist(h["quiet"], bins=bins, alpha=0.6, density=True, label="quiet steps")
        ax.hist(h["event"], bins=bins, alpha=0.6, density=True, label="event steps")
        ax.set_title(
            f"{Path(name).parent.name if name != 'none' else 'vanilla'}: AUC {results[name]['all']['auc']:.2f}"
        )
        ax.set_xlabel("P(silence marker)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
