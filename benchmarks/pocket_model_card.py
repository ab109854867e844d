"""Measure the pocket model for its model card: held-out offline metrics and vanilla streaming.

    python benchmarks/pocket_model_card.py --json docs/bench/pocket_model_card.json

1. offline metrics on held-out scenes (QA, relevance, question generation, task type, captions),
   single-frame perception, and a linear probe of the visual tokens (is the kind of a shape
   decodable from what the language model reads?), and the same QA questions asked in the
   streaming format (one frame per user turn);
2. RealStreamEval of the vanilla model on a held-out ShapesWorld benchmark, prompted as the paper
   prompts vanilla models (the default system prompt asks for the silence marker when there is
   nothing to say).
Writes the JSON and a PNG (accuracy per QA task type, streaming score per regime).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="pocket")
    ap.add_argument("--n-per-kind", type=int, default=100)
    ap.add_argument("--bench-seed", type=int, default=1)
    ap.add_argument("--bench-n", type=int, default=50)
    ap.add_argument("--work", type=Path, default=Path("runs/pocket-card"))
    ap.add_argument("--json", type=Path, default=Path("docs/bench/pocket_model_card.json"))
    args = ap.parse_args()

    from evostreaming.eval.policies import SessionPolicy
    from evostreaming.eval.protocol import run_protocol
    from evostreaming.eval.report import write_report
    from evostreaming.eval.schema import load_samples
    from evostreaming.models.loading import load_model
    from evostreaming.stream.session import SessionConfig
    from evostreaming.world.bench import make_bench
    from evostreaming.world.pocket.evaluate import offline_metrics, perception_metrics, streamed_qa_metrics
    from evostreaming.world.pocket.vision import vision_probe

    loaded = load_model(args.model, dtype="float32")
    offline = offline_metrics(loaded.model, loaded.processor, args.n_per_kind, out=args.work / "offline.json")
    perception = perception_metrics(loaded.model, loaded.processor)
    probe = vision_probe(loaded.model, loaded.processor)
    streamed_qa = streamed_qa_metrics(loaded.model, loaded.processor)
    bench = args.work / "bench"
    if not (bench / "samples.jsonl").exists():
        make_bench(args.bench_seed, args.bench_n, bench)
    samples = load_samples(bench / "samples.jsonl")
    for s in samples:
        s.video = str(bench / s.video)
    policy = SessionPolicy(loaded, lambda sample: SessionConfig(max_new_tokens=16))
    run_protocol(samples, policy, args.work / "vanilla")
    summary = write_report(args.work / "vanilla", timelines=5)
    out = {
        "model": args.model,
        "offline": {k: v for k, v in offline.items() if k != "failures"},
        "perception": perception,
        "vision_probe": probe,
        "streamed_qa": streamed_qa,
        "streaming": {k: summary[k] for k in ("overall", "regimes", "tasks")},
        "streaming_diagnostics": summary["diagnostics"],
        "bench": {"seed": args.bench_seed, "n": args.bench_n},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    acc = offline["qa_accuracy_by_task_type"]
    a1.bar(range(len(acc)), [100 * v for v in acc.values()])
    a1.set_xticks(range(len(acc)), [k.replace(" ", "\n") for k in acc], fontsize=7)
    a1.set_ylabel("offline QA accuracy (%)")
    a1.set_ylim(0, 100)
    regs = summary["regimes"]
    a2.bar(list(regs), list(regs.values()))
    a2.axhline(0, color="k", lw=0.5)
    a2.set_ylabel("RealStreamEval score (vanilla)")
    a2.set_title(f"Overall {summary['overall']:.1f}, R_ans {summary['diagnostics']['r_ans']:.2f}")
    fig.tight_layout()
    fig.savefig(args.json.with_suffix(".png"), dpi=100)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
