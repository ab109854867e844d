"""lmms-eval-compatible output beside our own files: ``lmms_eval/results.json`` and one
``lmms_eval/samples_<task>.jsonl`` per task, in lmms-eval's layout, so tooling built for lmms-eval runs
(result tables, leaderboards, its log viewers) reads RealStreamEval runs. Scores are in [0, 100] per
task (RealStreamEval's per-sample score, averaged), one metric: ``realstreameval``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from evostreaming.utils.jobs import write_atomic, write_json

METRIC = "realstreameval"


def _task_name(task: str) -> str:
    return "realstreameval_" + "".join(c if c.isalnum() else "_" for c in task.lower()).strip("_")


def write_lmms_eval(out_dir: Path, scores, samples, summary: dict, policy: str) -> Path:
    folder = Path(out_dir) / "lmms_eval"
    folder.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, list] = {}
    for score, sample in zip(scores, samples, strict=True):
        by_task.setdefault(_task_name(score.task), []).append((score, sample))
    results, configs, versions, n_samples, higher = {}, {}, {}, {}, {}
    for task, pairs in sorted(by_task.items()):
        values = [100.0 * s.score for s, _ in pairs]
        mean = sum(values) / len(values)
        results[task] = {"alias": task, f"{METRIC},none": mean, f"{METRIC}_stderr,none": "N/A"}
        configs[task] = {"task": task, "output_type": "generate_until", "metric_list": [{"metric": METRIC}]}
        versions[task] = "realstreameval-1"
        n_samples[task] = {"original": len(pairs), "effective": len(pairs)}
        higher[task] = {METRIC: True}
        lines = []
        for doc_id, (s, sample) in enumerate(pairs):
            lines.append(
                {
                    "doc_id": doc_id,
                    "doc": {"id": sample.id, "video": sample.video, "regime": sample.regime, "task": sample.task},
                    "target": [a.answer for a in sample.answers],
                    "arguments": [[t.text, {"time": t.time}] for t in sample.turns],
                    "resps": [],
                    "filtered_resps": [],
                    METRIC: 100.0 * s.score,
                    "accuracy": s.accuracy,
                    "premature": s.premature,
                }
            )
        write_atomic(folder / f"samples_{task}.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    write_json(
        folder / "results.json",
        {
            "results": results,
            "group_subtasks": {"realstreameval": sorted(results)},
            "configs": configs,
            "versions": versions,
            "n-shot": {t: 0 for t in results},
            "higher_is_better": higher,
            "n-samples": n_samples,
            "config": {"model": policy, "model_args": "", "batch_size": 1},
            "date": time.time(),
            "realstreameval_overall": summary["overall"],
        },
    )
    return folder
