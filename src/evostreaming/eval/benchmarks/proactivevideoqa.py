"""ProactiveVideoQA -> RealStreamEval samples (docs/benchmarks.md).

The benchmark has four subsets (WEB, EGO, TV, VAD) in one shape: ``anno.json``, a list of items with a
``conversation`` of user turns (the question at 0 s; for TV, subtitles arrive as further user turns at
their times) and ``answer``s, each with the reply ``content``, the ``related_timespan`` (when what it
describes is on screen) and the ``reply_timespan`` (when a reply is expected). One sample per item,
regime FAR, task = the subset: each answer is supported from the start of its related span and due
at the start of its reply span (replying before the related span is premature), judged as free text.

``--data`` is a subset's ``anno.json``, a subset folder, or the benchmark folder holding the subsets;
videos are ``<subset>/videos/<video>`` beside the annotations unless ``--videos`` says otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import ValidationError

from evostreaming.eval.benchmarks import BENCHMARKS, Benchmark, Metric
from evostreaming.eval.schema import GoldAnswer, Sample, SampleFormatError, UserTurn, one_line

SUBSETS = ("WEB", "EGO", "TV", "VAD")


def _span(answer: dict, name: str, where: str) -> tuple[float, float]:
    span = answer.get(name)
    if not (isinstance(span, list) and len(span) == 2 and all(_is_number(x) for x in span)):
        raise SampleFormatError(f"field '{where}.{name}': {span!r} is not a [start, end] pair of seconds")
    start, end = float(span[0]), float(span[1])
    if end < start:
        raise SampleFormatError(f"field '{where}.{name}': ends ({end}) before it starts ({start})")
    return start, end


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _seconds(value, where: str) -> float:
    if not _is_number(value) or value < 0:
        raise SampleFormatError(f"field {where!r}: {value!r} is not a number of seconds >= 0")
    return float(value)


def _objects(item: dict, key: str) -> list[dict]:
    value = item[key]
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise SampleFormatError(
            f"field {key!r}: {_short(value)} is not a list of objects (each turn or answer is a JSON object)"
        )
    return value


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _item(item: dict, subset: str, video_root: Path, fps: float) -> Sample:
    """One annotation item as a sample; a bad field raises SampleFormatError naming it (and the turn)."""
    if not isinstance(item, dict):
        raise SampleFormatError(f"{_short(item)} is not an object")
    for key in ("video", "conversation", "answer", "duration"):
        if key not in item:
            raise SampleFormatError(f"field {key!r} is missing")
    duration = _seconds(item["duration"], "duration")
    if duration <= 0:
        raise SampleFormatError(f"field 'duration': {item['duration']!r} is not a positive number of seconds")
    turns = []
    for t, turn in enumerate(_objects(item, "conversation")):
        if turn.get("role") != "user" or not str(turn.get("content", "")).strip():
            raise SampleFormatError(f"field 'conversation[{t}]': every turn is a user turn with content")
        turns.append(
            UserTurn(time=_seconds(turn.get("time"), f"conversation[{t}].time"), text=str(turn["content"]).strip())
        )
    answers, pauc_turns = [], []
    for t, a in enumerate(_objects(item, "answer")):
        related, reply = _span(a, "related_timespan", f"answer[{t}]"), _span(a, "reply_timespan", f"answer[{t}]")
        pauc_turns.append(
            {"content": str(a.get("content", "")).strip(), "reply": list(reply), "related": list(related)}
        )
        start = min(related[0], reply[0])
        answers.append(
            GoldAnswer(
                time=max(start, reply[0]),
                evidence_start=start,
                evidence_end=max(related[1], reply[1]),
                answer=str(a.get("content", "")).strip() or "(no text)",
                judge="text",
            )
        )
    if not answers:
        raise SampleFormatError("field 'answer': no reply")
    try:
        return Sample(
            id=f"pvqa-{subset}-{item.get('question_id', item['video'])}",
            video=str(video_root / str(item["video"])),
            fps=fps,
            duration=duration,
            task=subset,
            regime="FAR",
            turns=sorted(turns, key=lambda t: t.time),
            answers=sorted(answers, key=lambda a: a.time),
            # PAUC (eval report --as proactivevideoqa) reads each turn's own spans and the question
            meta={
                "source": "proactivevideoqa",
                "subset": subset,
                "pauc": {"question": turns[0].text if turns else "", "turns": pauc_turns},
            },
        )
    except ValidationError as exc:  # one line naming the field, not pydantic's dump
        raise SampleFormatError(one_line(exc)) from None


def _anno_files(data: Path) -> list[tuple[str, Path]]:
    if data.is_file():
        return [(data.parent.name.upper(), data)]
    if (data / "anno.json").is_file():
        return [(data.name.upper(), data / "anno.json")]
    found = [(s, data / s / "anno.json") for s in SUBSETS if (data / s / "anno.json").is_file()]
    if not found:
        raise SampleFormatError(f"{data}: no anno.json, nor any of {', '.join(SUBSETS)}/anno.json")
    return found


def load_proactivevideoqa(data: str | Path, videos: str | Path | None = None, fps: float = 0.5) -> list[Sample]:
    samples = []
    for subset, file in _anno_files(Path(data)):
        try:
            items = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise SampleFormatError(f"{file}: not a ProactiveVideoQA annotation file ({exc})") from None
        root = Path(videos) / subset / "videos" if videos else file.parent / "videos"
        if not isinstance(items, list):
            raise SampleFormatError(f"{file}: expected a JSON list of items, got {type(items).__name__}")
        first_seen: dict[str, int] = {}
        for i, item in enumerate(items):
            try:
                sample = _item(item, subset, root, fps)
            except (SampleFormatError, ValueError, TypeError, KeyError) as exc:
                raise SampleFormatError(f"{file}: item {i}: {exc}") from None
            if sample.id in first_seen:  # one id, two streams: the report would keep only one of them
                raise SampleFormatError(
                    f"{file}: item {i}: field 'question_id': {item.get('question_id', item['video'])!r} is also "
                    f"item {first_seen[sample.id]}'s; give each item its own question_id"
                )
            first_seen[sample.id] = i
            samples.append(sample)
    return samples


def _load(data: Path, videos: Path | None, fps: float | None):
    return load_proactivevideoqa(data, videos, fps or 0.5)


def _pauc_report(output: Path, judge: str) -> dict:
    from evostreaming.eval.benchmarks.pauc import report

    return report(output, judge)


BENCHMARKS.register(
    "proactivevideoqa",
    Benchmark(
        _load,
        "ProactiveVideoQA anno.json (a subset or all four)",
        metric=Metric("PAUC", _pauc_report, ("overall", "judge_failures")),
    ),
)
