"""OVO-Bench -> RealStreamEval samples (the default mapping; see docs/realstreameval.md).

* RTVP (OCR, ACR, ATR, STU, FPD, OJR) and BT (EPM, ASI, HLD): the question and its lettered
  options arrive at ``realtime``, delivered with the last frame strictly before it (the
  released clips end at ``realtime``, so that is the last frame that exists; at 0 s, the first
  frame); the letter is due at that same step (delta = 0). The stream continues for
  ``tail_s`` seconds when the video has them, so repeated answers can occur and be penalized.
* CRR: the question arrives at ``ask_time``; the gold ``answer`` (free text) is due from
  ``clue_time``: answering before it is premature.
* SSR: the user asks at the start to be told when each step of the tutorial begins; one gold
  answer per step at its ``start_time``, naming the step.
* REC: the user asks at the start to be told each time the activity is completed, with the
  running count; one gold answer per repetition at its ``end_time``, with the count.
* Forward streams end at the last probe time of the row; gold answers after it are dropped.
Quirks handled: int/float seconds, unsorted probes, 2 to 5 options.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from evostreaming.eval.schema import GoldAnswer, Sample, SampleFormatError, UserTurn

RTVP_TASKS = ("OCR", "ACR", "ATR", "STU", "FPD", "OJR")
BT_TASKS = ("EPM", "ASI", "HLD")
FAR_TASKS = ("REC", "SSR", "CRR")


@dataclass(frozen=True)
class OVOMapping:
    fps: float = 0.5
    tail_s: float = 4.0
    mcq_instruction: str = "Answer with the option's letter from the given choices directly."
    ssr_prompt: str = (
        "This is a tutorial video about '{tutorial}'. Tell me as soon as each of these steps begins, naming it: "
        "{steps}."
    )
    rec_prompt: str = (
        "Tell me each time the activity '{activity}' is completed, with how many times it has been done so far."
    )
    crr_suffix: str = " Tell me the answer as soon as you can see it in the video."


def _floor_step(t: float, fps: float) -> float:
    return math.floor(float(t) * fps + 1e-9) / fps


def _before_step(t: float, fps: float) -> float:
    """The last grid time strictly before t (0 for t <= 0)."""
    return max(0, math.ceil(float(t) * fps - 1e-9) - 1) / fps


def _mcq(row: dict, m: OVOMapping, regime: str, video: str) -> Sample:
    options = [str(o) for o in row["options"]]
    if not 2 <= len(options) <= 8:
        raise SampleFormatError(f"OVO row {row['id']}: {len(options)} options")
    letters = [chr(ord("A") + i) for i in range(len(options))]
    gt = row["gt"]
    if isinstance(gt, bool) or not isinstance(gt, int) or not 0 <= gt < len(options):
        raise SampleFormatError(f"field 'gt': {gt!r} is not an option index (0 to {len(options) - 1})")
    text = row["question"].strip() + "\n" + "\n".join(f"{ch}. {o}" for ch, o in zip(letters, options, strict=True))
    text += "\n" + m.mcq_instruction
    t = _before_step(row["realtime"], m.fps)
    return Sample(
        id=f"ovo-{row['id']}",
        video=video,
        fps=m.fps,
        duration=t + m.tail_s + 1.0 / m.fps,
        task=row["task"],
        regime=regime,
        turns=[UserTurn(time=t, text=text)],
        answers=[GoldAnswer(time=t, answer=letters[gt], judge="choice", options=options)],
        meta={"source": "ovo-bench", "realtime": row["realtime"]},
    )


def _end(row: dict) -> float:
    return max(float(p["realtime"]) for p in row["test_info"])


def _crr(row: dict, m: OVOMapping, video: str) -> Sample:
    ask = _floor_step(row["ask_time"], m.fps)
    clue = float(row["clue_time"])
    return Sample(
        id=f"ovo-{row['id']}",
        video=video,
        fps=m.fps,
        duration=_end(row) + 1.0 / m.fps,
        task="CRR",
        regime="FAR",
        turns=[UserTurn(time=ask, text=row["question"].strip() + m.crr_suffix)],
        answers=[GoldAnswer(time=max(clue, ask), evidence_start=max(clue, ask), answer=row["answer"], judge="text")],
        meta={"source": "ovo-bench", "ask_time": row["ask_time"], "clue_time": row["clue_time"]},
    )


def _announced(row: dict, m: OVOMapping, video: str, prompt: str, answers: list[GoldAnswer], what: str) -> Sample:
    """A forward task announced at 0 s whose answers are due over the stream."""
    end = _end(row)
    kept = [a for a in answers if a.time <= end]
    if not kept:
        raise SampleFormatError(f"OVO row {row['id']}: no {what} before the stream ends ({end} s)")
    return Sample(
        id=f"ovo-{row['id']}",
        video=video,
        fps=m.fps,
        duration=end + 1.0 / m.fps,
        task=row["task"],
        regime="FAR",
        turns=[UserTurn(time=0.0, text=prompt)],
        answers=kept,
        meta={"source": "ovo-bench", "dropped_answers": len(answers) - len(kept)},
    )


def _ssr(row: dict, m: OVOMapping, video: str) -> Sample:
    steps = [str(s) for s in row["all_steps"]]
    prompt = m.ssr_prompt.format(tutorial=row.get("tutorial", "a task"), steps="; ".join(steps))
    answers = [
        GoldAnswer(time=float(t), evidence_start=float(t), answer=step, judge="text")
        for step, t in sorted(zip(steps, row["start_time"], strict=True), key=lambda p: float(p[1]))
    ]
    return _announced(row, m, video, prompt, answers, "SSR step starts")


def _rec(row: dict, m: OVOMapping, video: str) -> Sample:
    reps = sorted(zip(row["start_times"], row["end_times"], strict=True), key=lambda p: float(p[1]))
    answers = [
        GoldAnswer(time=float(e), evidence_start=float(s), answer=str(i + 1), judge="number")
        for i, (s, e) in enumerate(reps)
    ]
    return _announced(row, m, video, m.rec_prompt.format(activity=row["activity"]), answers, "REC repetition ends")


def load_ovo(path: str | Path, videos: str | Path | None = None, mapping: OVOMapping | None = None) -> list[Sample]:
    """Read ``ovo_bench_new.json`` (or the sample file) into samples."""
    path = Path(path)
    m = mapping or OVOMapping()
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        raise SampleFormatError(f"{path}: no such file (expected OVO-Bench's ovo_bench_new.json)") from None
    except json.JSONDecodeError as exc:
        raise SampleFormatError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    root = Path(videos) if videos else path.parent
    samples = []
    for i, row in enumerate(rows):
        try:
            video = str(root / row["video"])
            task = row["task"]
            if task in RTVP_TASKS:
                samples.append(_mcq(row, m, "RTVP", video))
            elif task in BT_TASKS:
                samples.append(_mcq(row, m, "BT", video))
            elif task == "CRR":
                samples.append(_crr(row, m, video))
            elif task == "SSR":
                samples.append(_ssr(row, m, video))
            elif task == "REC":
                samples.append(_rec(row, m, video))
            else:
                raise SampleFormatError(f"unknown task {task!r}")
        except (KeyError, ValueError, TypeError) as exc:
            raise SampleFormatError(f"{path}: row {i} (id {row.get('id')}): {exc}") from exc
    return samples
