"""Re-score saved trajectories (no model needed): summary.json, report.md and timelines."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict
from pathlib import Path

from evostreaming.eval.judges import Judge, RuleJudge
from evostreaming.eval.protocol import failure_reasons, read_trajectories
from evostreaming.eval.schema import REGIMES, Sample
from evostreaming.eval.scoring import (
    SampleScore,
    ScoreConfig,
    StepRecord,
    aggregate,
    clustered_ci,
    diagnostics,
    score_sample,
)
from evostreaming.utils.jobs import write_atomic, write_json
from evostreaming.utils.jsonl import append_jsonl


def _failed_score(sample: Sample) -> SampleScore:
    """A failed sample scores 0 in the headline Overall (never dropped from the denominator)."""
    return SampleScore(sample.id, sample.task, sample.regime, sample.video, 0.0, 0.0, 1.0, False, 0.0, 0, 0)


def safe_name(text: str) -> str:
    """A file name for a sample id: letters, digits, '.', '_' and '-' only, never '..' or a path; ids
    that had to change get a short hash so two of them cannot collide."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "sample"
    if name != text:
        name = f"{name[:80]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return name


def score_trajectories(rows: list[dict], judge: Judge, cfg: ScoreConfig = ScoreConfig()):
    """Scores of the samples that ran to the end (failed ones excluded: see ``build_summary``)."""
    scores, samples = [], []
    for row in rows:
        if row.get("error"):
            continue
        sample = Sample.model_validate(row["sample"])
        steps = [
            StepRecord(
                s["step"], s["time"], s["action"], s.get("text", ""), s.get("tokens", 0), s.get("latency_s", 0.0)
            )
            for s in row["steps"]
        ]
        if not steps:
            continue
        scores.append(score_sample(sample, steps, judge, cfg))
        samples.append(sample)
    return scores, samples


def build_summary(
    scores, samples, *, judge_name: str, failed_rows: list[dict] | None = None, judge_failures=()
) -> dict:
    """``overall`` counts every sample, a failed one as 0; ``overall_successful`` only those that ran."""
    failed_rows = failed_rows or []
    with_failures = scores + [_failed_score(Sample.model_validate(r["sample"])) for r in failed_rows]
    agg = aggregate(with_failures)
    diag = diagnostics(scores, {s.id: s.fps for s in samples})
    diag["stream_errors"] = len(failed_rows)
    return {
        "overall": agg["overall"],
        "overall_successful": aggregate(scores)["overall"],
        "regimes": agg["regimes"],
        "tasks": agg["tasks"],
        "samples_total": len(with_failures),
        "samples_failed": len(failed_rows),
        "failures": failure_reasons(failed_rows),
        "failed_samples": {r["id"]: r["error"] for r in failed_rows},
        "judge_failure_reasons": list(judge_failures)[:20],
        "diagnostics": diag,
        "ci95": clustered_ci(with_failures),
        "judge": judge_name,
        "samples": [asdict(s) for s in scores],
    }


def markdown_table(summary: dict, title: str = "RealStreamEval") -> str:
    lines = [f"# {title}", "", "| regime | score |", "|---|---|"]
    for reg in REGIMES:
        if reg in summary["regimes"]:
            lines.append(f"| {reg} | {summary['regimes'][reg]:.2f} |")
    ci = summary.get("ci95", {}).get("overall")
    ci_txt = f" (95% CI {ci[0]:.2f} to {ci[1]:.2f}, clustered by video)" if ci else ""
    total, failed = summary.get("samples_total", 0), summary.get("samples_failed", 0)
    lines.append(f"| **Overall** (all {total} samples, failed = 0) | **{summary['overall']:.2f}**{ci_txt} |")
    if failed:
        lines.append(f"| Overall (the {total - failed} samples that ran) | {summary['overall_successful']:.2f} |")
    lines += ["", "| task | score |", "|---|---|"]
    lines += [f"| {t} | {v:.2f} |" for t, v in summary["tasks"].items()]
    d = summary["diagnostics"]
    latency = "-" if d["median_latency_s"] is None else f"{d['median_latency_s']:.1f}"
    lines += [
        "",
        "| diagnostic | value |",
        "|---|---|",
        f"| R_ans (mean) | {d['r_ans']:.3f} |",
        f"| precision / recall of responses | {d['precision']:.3f} / {d['recall']:.3f} |",
        f"| responses per minute | {d['responses_per_min']:.2f} |",
        "| unnecessary per minute (premature / late / redundant) | "
        + " / ".join(f"{d['unnecessary_per_min'][k]:.2f}" for k in ("premature", "late", "redundant"))
        + " |",
        f"| samples with a premature answer | {d['premature_samples']} |",
        f"| median latency evidence -> answer (s) | {latency} |",
        f"| tokens per response | {d['tokens_per_response']:.1f} |",
        f"| judge failures | {d['judge_failures']} |",
        f"| failed samples (stream, decode or model errors) | {d['stream_errors']} |",
        f"| samples | {d['samples']} |",
        f"| judge | {summary['judge']} |",
    ]
    return "\n".join(lines) + "\n"


def plot_timeline(row: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample = Sample.model_validate(row["sample"])
    steps = row["steps"]
    end = max([s["time"] for s in steps] + [a.time for a in sample.answers]) + 2
    fig, ax = plt.subplots(figsize=(10, 2.4))
    for a in sample.answers:
        ev = a.evidence_start if a.evidence_start is not None else a.time
        ax.axvspan(ev, a.time + 1e-3, ymin=0.05, ymax=0.3, color="tab:green", alpha=0.4)
        ax.plot([a.time], [0.18], marker="v", color="tab:green")
        ax.annotate(a.answer[:18], (a.time, 0.05), fontsize=7, color="tab:green")
    for u in sample.turns:
        ax.plot([u.time], [0.5], marker="s", color="tab:blue")
        ax.annotate(u.text[:30].replace("\n", " "), (u.time, 0.55), fontsize=7, color="tab:blue")
    for s in steps:
        if s["action"] == "respond":
            ax.plot([s["time"]], [0.82], marker="o", color="tab:red")
            ax.annotate(s["text"][:18], (s["time"], 0.88), fontsize=7, color="tab:red", rotation=20)
    ax.set_xlim(-1, end)
    ax.set_ylim(0, 1.1)
    ax.set_yticks([0.18, 0.5, 0.82], ["gold", "user", "model"])
    ax.set_xlabel("stream time (s)")
    ax.set_title(f"{sample.id} [{sample.task}/{sample.regime}]", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def write_report(
    out_dir: Path, judge: Judge | None = None, *, timelines: int = 50, cfg: ScoreConfig = ScoreConfig()
) -> dict:
    out_dir = Path(out_dir)
    rows = read_trajectories(out_dir)
    if not rows:
        raise FileNotFoundError(f"{out_dir}: no trajectories.jsonl with finished samples; run 'evostreaming eval run'")
    judge = judge or RuleJudge()
    scores, samples = score_trajectories(rows, judge, cfg)
    failed = [r for r in rows if r.get("error")]
    summary = build_summary(
        scores, samples, judge_name=judge.name, failed_rows=failed, judge_failures=getattr(judge, "failures", ())
    )
    write_json(out_dir / "summary.json", summary)
    policy = rows[0].get("policy", "?")
    from evostreaming.eval.lmms import write_lmms_eval

    write_lmms_eval(out_dir, scores, samples, summary, policy)  # the same scores in lmms-eval's layout
    write_atomic(out_dir / "report.md", markdown_table(summary, f"RealStreamEval: {policy}"))
    # reports may be re-made with another judge: allowed (the trajectories stay), and recorded
    append_jsonl(out_dir / "reports.jsonl", [{"time": time.strftime("%Y-%m-%d %H:%M:%S"), "judge": judge.name}])
    for row in rows[: len(rows) if timelines < 0 else timelines]:
        plot_timeline(row, out_dir / "timelines" / f"{safe_name(row['id'])}.png")
    return summary
