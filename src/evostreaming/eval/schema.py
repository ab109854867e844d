"""RealStreamEval samples: the native JSONL format and its validation.

One JSON object per line (see docs/realstreameval-format.md and the JSON Schema there):

    {"id": "ovo-1558", "video": "videos/1558.mp4", "fps": 0.5, "task": "REC", "regime": "FAR",
     "turns": [{"time": 0.0, "text": "Tell me each time ... with the running count."}],
     "answers": [{"time": 17.0, "evidence_start": 6.0, "answer": "1", "judge": "number"}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Regime = Literal["RTVP", "BT", "FAR"]
JudgeKind = Literal["choice", "number", "yesno", "exact", "text"]
REGIMES: tuple[str, ...] = ("RTVP", "BT", "FAR")


class UserTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: float = Field(ge=0, description="stream time (s) at which the user speaks")
    text: str = Field(min_length=1)


class GoldAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: float = Field(ge=0, description="stream time (s) at which the answer is due")
    evidence_start: float | None = Field(
        None, ge=0, description="earliest time (s) the answer is supported; answering before it is premature"
    )
    evidence_end: float | None = Field(None, ge=0)
    answer: str = Field(description="gold text, option letter, number, or Yes/No")
    judge: JudgeKind = "text"
    options: list[str] | None = None

    @model_validator(mode="after")
    def _evidence_order(self):
        if self.evidence_start is not None and self.evidence_start > self.time:
            raise ValueError(f"evidence_start {self.evidence_start} is after the answer time {self.time}")
        return self


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    video: str = Field(description="video path (relative to the JSONL file or --videos) or URL")
    fps: float = Field(0.5, gt=0)
    duration: float | None = Field(None, gt=0, description="stream length (s); default: the video's")
    task: str = Field(min_length=1)
    regime: Regime
    turns: list[UserTurn] = Field(min_length=1)
    answers: list[GoldAnswer] = Field(min_length=1)
    meta: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _times_inside_the_stream(self):
        if self.duration is not None:
            self.check_times(self.duration)
        return self

    def check_times(self, end: float, what: str = "duration") -> None:
        """Every turn and answer time falls inside the stream (``end`` seconds): a time past the end
        can never be reached, so even a perfect model would score 0 there."""
        for field_name, items in (("turns", self.turns), ("answers", self.answers)):
            for i, item in enumerate(items):
                if item.time > end + 1e-6:
                    raise ValueError(
                        f"{field_name}[{i}].time {item.time} s is after the stream's end ({what} {end:g} s); "
                        "fix the time or the duration"
                    )

    def evidence_time(self) -> float:
        """When the earliest gold answer becomes supported (the premature-answer boundary)."""
        return min(a.evidence_start if a.evidence_start is not None else a.time for a in self.answers)


class SampleFormatError(ValueError):
    pass


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line naming the first bad field (``turns.0.time``), not its multi-line dump."""
    first = exc.errors()[0]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a check of the whole item, whose message names its fields itself
        return message + more
    return f"field '{'.'.join(str(p) for p in first['loc'])}': {message}{more}"


def load_samples(path: str | Path) -> list[Sample]:
    """Read and validate a JSONL file; errors name the file, line and field."""
    path = Path(path)
    if path.is_dir():
        path = path / "samples.jsonl"
    if not path.exists():
        raise SampleFormatError(f"{path}: no such file (expected a RealStreamEval JSONL file)")
    samples, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SampleFormatError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        try:
            sample = Sample.model_validate(raw)
        except ValidationError as exc:
            raise SampleFormatError(f"{path}:{lineno}: {one_line(exc)} (see docs/realstreameval-format.md)") from exc
        if sample.id in seen:
            raise SampleFormatError(f"{path}:{lineno}: field 'id': duplicate sample id {sample.id!r}")
        seen.add(sample.id)
        samples.append(sample)
    return samples


def write_samples(samples: list[Sample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(s.model_dump_json(exclude_defaults=False) + "\n")
    return path


def json_schema() -> dict:
    return Sample.model_json_schema()
