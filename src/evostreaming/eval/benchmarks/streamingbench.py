"""StreamingBench (Lin et al., 2024; THUNLP-MT/StreamingBench, MIT) -> RealStreamEval samples, and its own
metrics computed from the same trajectories (docs/benchmarks.md).

* **Real-Time Visual Understanding** (``questions_real.json``, 10 task types): a multiple-choice
  question at ``time_stamp``; StreamingBench shows the video from 0 to that moment and asks. Here the
  question arrives with the frame at (or just before) ``time_stamp`` and its letter is due at that same
  step (regime RTVP); the stream goes on for ``tail_s`` seconds, so a repeated answer can be penalized.
* **Proactive Output** (``questions_proactive_*.json``): the instruction ("when X, output 'Y'")
  arrives at ``time_stamp``; the output is due at ``ground_truth_time_stamp``. StreamingBench counts
  a reply within ±2 s of it as timely and checks the gold string is contained in it; here the answer is
  supported from 2 s before (``evidence_start``: earlier is premature) and judged by containment
  (the ``text`` judge), regime FAR.

Quirks handled: ``H:MM:SS`` stamps, options with or without their ``A.`` prefix, video paths relative
to the folder the user downloads (``--videos``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from evostreaming.eval.benchmarks import BENCHMARKS, Benchmark, Metric
from evostreaming.eval.schema import GoldAnswer, Sample, SampleFormatError, UserTurn

PROACTIVE_TOLERANCE_S = 2.0  # StreamingBench's count.py: |reply time - ground truth| <= 2 s
PREFIX = re.compile(r"^\s*\(?([A-Z])[.)]\s*")


@dataclass(frozen=True)
class StreamingBenchMapping:
    fps: float = 0.5
    tail_s: float = 4.0
    mcq_instruction: str = "Answer with the option's letter from the given choices directly."


def parse_hms(text: str) -> float:
    """``H:MM:SS`` or ``HH:MM:SS`` (seconds may carry a fraction) -> seconds."""
    parts = str(text).strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(re.fullmatch(r"\d+(\.\d+)?", p) for p in parts):
        raise ValueError(f"{text!r} is not an H:MM:SS time")
    return sum(float(p) * 60**i for i, p in enumerate(reversed(parts)))


def _grid(t: float, fps: float) -> float:
    """The frame at or just before ``t`` on the stream's fps grid."""
    return math.floor(t * fps + 1e-9) / fps


def _field(q: dict, name: str, parse=lambda v: v):
    if name not in q:
        raise SampleFormatError(f"field {name!r} is missing")
    try:
        return parse(q[name])
    except (ValueError, TypeError) as exc:
        raise SampleFormatError(f"field {name!r}: {exc}") from None


def _options(raw) -> list[str]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= 8:
        raise ValueError("a list of 2 to 8 options")
    return [PREFIX.sub("", str(o), count=1).strip() for o in raw]


def _real(q: dict, sid: str, video: str, m: StreamingBenchMapping) -> Sample:
    t = _grid(_field(q, "time_stamp", parse_hms), m.fps)
    options = _field(q, "options", _options)
    letters = [chr(ord("A") + i) for i in range(len(options))]
    answer = _field(q, "answer", lambda a: str(a).strip())
    if answer not in letters:
        raise SampleFormatError(f"field 'answer': {answer!r} is not one of {letters}")
    text = _field(q, "question", str).strip() + "\n"
    text += "\n".join(f"{ch}. {o}" for ch, o in zip(letters, options, strict=True)) + "\n" + m.mcq_instruction
    return Sample(
        id=sid,
        video=video,
        fps=m.fps,
        duration=t + m.tail_s + 1.0 / m.fps,
        task=_field(q, "task_type", str),
        regime="RTVP",
        turns=[UserTurn(time=t, text=text)],
        answers=[GoldAnswer(time=t, answer=answer, judge="choice", options=options)],
        meta={"source": "streamingbench", "time_stamp": q["time_stamp"], "ability": q.get("required_ability")},
    )


def _proactive(q: dict, sid: str, video: str, m: StreamingBenchMapping) -> Sample:
    asked = _grid(_field(q, "time_stamp", parse_hms), m.fps)
    due = _field(q, "ground_truth_time_stamp", parse_hms)
    if due < asked:
        raise SampleFormatError(
            f"field 'ground_truth_time_stamp': {q['ground_truth_time_stamp']} is before the question"
        )
    output = _field(q, "ground_truth_output", lambda v: str(v).strip())
    return Sample(
        id=sid,
        video=video,
        fps=m.fps,
        duration=due + PROACTIVE_TOLERANCE_S + m.tail_s,
        task="Proactive Output",
        regime="FAR",
        turns=[UserTurn(time=asked, text=_field(q, "question", str).strip())],
        answers=[
            GoldAnswer(time=due, evidence_start=max(asked, due - PROACTIVE_TOLERANCE_S), answer=output, judge="text")
        ],
        meta={"source": "streamingbench", "ground_truth_time": due, "time_stamp": q["time_stamp"]},
    )


def load_streamingbench(
    path: str | Path, videos: str | Path | None = None, mapping: StreamingBenchMapping | None = None
) -> list[Sample]:
    """Every question of a StreamingBench question file; a bad row names the file, entry, question and field."""
    path, m = Path(path), mapping or StreamingBenchMapping()
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SampleFormatError(f"{path}: not a StreamingBench question file ({exc})") from None
    if not isinstance(entries, list):
        raise SampleFormatError(f"{path}: expected a JSON list of entries")
    root = Path(videos) if videos else path.parent
    samples = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("questions", []), list):
            raise SampleFormatError(
                f"{path}: entry {i}: expected an object with a 'questions' list, got {json.dumps(entry)[:60]}"
            )
        for j, q in enumerate(entry.get("questions") or [None]):
            try:
                if not isinstance(q, dict):
                    raise SampleFormatError("no questions")
                rel = _field(entry, "video_path", str)
                video = str(root / rel.removeprefix("./")) if "://" not in rel else rel
                build = _proactive if "ground_truth_time_stamp" in q else _real
                samples.append(build(q, f"sb-{path.stem}-{i}-{j}", video, m))  # ids unique across the files
            except SampleFormatError as exc:
                raise SampleFormatError(f"{path}: entry {i}, question {j}: {exc}") from None
            except ValueError as exc:  # a pydantic check (a time past the stream's end, ...)
                raise SampleFormatError(f"{path}: entry {i}, question {j}: {exc}") from None
    return samples


def streamingbench_metrics(samples: list[Sample], trajectories: list[dict]) -> dict:
    """StreamingBench's own numbers from RealStreamEval trajectories: multiple-choice accuracy per task
    (the first reply at or after the question, its letter), and for Proactive Output the share of
    replies within ±2 s of the ground truth (time) and of those containing the gold string (answer),
    read on the *last* reply as the official ``count.py`` does."""
    from evostreaming.eval.judges.rule import extract_letter, normalize

    by_id = {s.id: s for s in samples}
    stats: dict[str, dict[str, float]] = {}
    for row in trajectories:
        s = by_id.get(row["id"])
        if s is None:
            continue
        replies = [st for st in row.get("steps", []) if st.get("action") == "respond" and st.get("text")]
        gold = s.answers[0]
        if s.task == "Proactive Output":
            st = stats.setdefault("Proactive Output", {"total": 0, "time_correct": 0, "answer_correct": 0})
            st["total"] += 1
            if replies:
                last = replies[-1]
                if abs(last["time"] - gold.time) <= PROACTIVE_TOLERANCE_S:
                    st["time_correct"] += 1
                    if normalize(gold.answer) in normalize(last["text"]):
                        st["answer_correct"] += 1
        else:
            st = stats.setdefault(s.task, {"total": 0, "correct": 0})
            st["total"] += 1
            first = next((r for r in replies if r["time"] >= s.turns[0].time - 1e-9), None)
            if first and extract_letter(first["text"], len(gold.options or [])) == gold.answer:
                st["correct"] += 1
    for st in stats.values():
        if "correct" in st:
            st["accuracy"] = st["correct"] / st["total"] if st["total"] else 0.0
        else:
            st["time_accuracy"] = st["time_correct"] / st["total"] if st["total"] else 0.0
            st["answer_accuracy"] = st["answer_correct"] / st["total"] if st["total"] else 0.0
    mc = [st for st in stats.values() if "correct" in st]
    total = sum(st["total"] for st in mc)
    return {
        "protocol": "streamingbench",
        "tasks": stats,
        "real_time_accuracy": sum(st["correct"] for st in mc) / total if total else None,
    }


def _load(data: Path, videos: Path | None, fps: float | None):
    return load_streamingbench(data, videos, StreamingBenchMapping(fps=fps or 0.5))


def report(output: Path, judge: str | None = None) -> dict:
    """StreamingBench's own metrics of a saved run (``eval report --as streamingbench``); no judge."""
    from evostreaming.eval.protocol import read_trajectories
    from evostreaming.utils.jobs import write_json

    rows = [r for r in read_trajectories(output) if not r.get("error")]
    samples = [Sample.model_validate(r["sample"]) for r in rows]
    if not samples or any(s.meta.get("source") != "streamingbench" for s in samples):
        raise SampleFormatError(
            f"--as streamingbench: {output} holds samples that are not StreamingBench's (--benchmark streamingbench)"
        )
    summary = streamingbench_metrics(samples, rows)
    summary.update(
        protocol_version="count.py@8929923",
        parameters={
            "real_time": "the letter of the first reply at or after the question",
            "proactive_time_tolerance_s": PROACTIVE_TOLERANCE_S,
            "proactive_reply": "the last reply; answer correct if the gold string is contained in it",
        },
        samples=len(samples),
    )
    write_json(output / "summary.streamingbench.json", summary)
    return summary


BENCHMARKS.register(
    "streamingbench",
    Benchmark(
        _load,
        "StreamingBench question files (real-time MC, proactive output)",
        metric=Metric("StreamingBench", report, ("protocol", "real_time_accuracy", "samples")),
    ),
)
