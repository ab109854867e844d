"""PAUC: ProactiveVideoQA's own metric (ProactiveBench, arXiv 2507.09313), from the rule-by-rule spec in
``../shared/data/proactivevideoqa/PAUC.md`` (our own code).

Per gold answer turn: the replies inside its reply span (exact-text duplicates dropped) are judged
*cumulatively* on a three-level scale (y = level - 1 in {0, 1, 2}; an unparsable judgement gives no
point); a point after the related span that scores below the last point inside it is dropped (it
probably answers the next turn); the turn scores the area under the left-continuous step function that
starts at 0.5 and holds each point's y until the next, over the reply span, with every point's offset
scaled by (1 - omega), divided by span x 2. A turn without points scores 0.25. PAUC@omega is the mean
over all gold turns, x 100, per subset and overall, at omega 0, 0.5 and 1.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OMEGAS = (0.0, 0.5, 1.0)
START_LEVEL = 0.5  # the step function's value before the first point
MAX_Y = 2  # judge level 3 -> y 2
NO_REPLY = START_LEVEL / MAX_Y  # 0.25

JUDGE_PROMPT = """You are grading a streaming video assistant's answer against a reference answer.
Question: {question}
Reference answer: {gold}
Assistant's answer: {answer}

How much of the reference answer's key information does the assistant's answer cover?
3 = mostly covered: all key information is there (minor slips allowed)
2 = partially covered: some is correct, with significant errors or missing points
1 = incorrect, unrelated or very poor
Output the number only."""


@dataclass(frozen=True)
class GoldTurn:
    """One gold answer turn of an item."""

    item: str  # the sample id
    subset: str
    question: str
    content: str
    reply: tuple[float, float]  # reply_timespan [r0, r1]
    related: tuple[float, float]  # related_timespan [a0, a1], a1 <= r1


@dataclass(frozen=True)
class Reply:
    time: float  # stream time the reply was produced at
    text: str


# a judge: (question, gold content, candidate answer) -> level 1..3, or None when it gave no parsable level
Judge = Callable[[str, str, str], int | None]


def in_span(replies: list[Reply], turn: GoldTurn) -> list[Reply]:
    """The replies with r0 <= time <= r1, in time order, without exact repeats of an earlier one's text."""
    r0, r1 = turn.reply
    kept, seen = [], set()
    for r in sorted((r for r in replies if r0 <= r.time <= r1), key=lambda r: r.time):
        if r.text not in seen:
            seen.add(r.text)
            kept.append(r)
    return kept


def judged_points(kept: list[Reply], turn: GoldTurn, judge: Judge) -> list[tuple[float, int]]:
    """(time, y) per kept reply: the judge sees replies 1..k joined by single spaces (cumulative)."""
    points = []
    for k, r in enumerate(kept, 1):
        level = judge(turn.question, turn.content, " ".join(x.text for x in kept[:k]))
        if level is not None:
            points.append((r.time, level - 1))
    return points


def drop_late_regressions(points: list[tuple[float, int]], related_end: float) -> list[tuple[float, int]]:
    """Points after the related span scoring below the latest point inside it are removed."""
    out, last_related = [], 0
    for t, y in sorted(points, key=lambda p: p[0]):
        if t <= related_end:
            last_related = y
        elif y < last_related:
            continue
        out.append((t, y))
    return out


def turn_score(points: list[tuple[float, int]], reply: tuple[float, float], omega: float) -> float:
    """Area under the step function (start level 0.5) over the reply span, divided by span x MAX_Y."""
    if not points:
        return NO_REPLY
    r0, r1 = reply
    span = r1 - r0
    if span <= 0:  # a zero-length span: only the last level means anything
        return points[-1][1] / MAX_Y
    xs = sorted(((t - r0) * (1 - omega), y) for t, y in points)
    xs.append((span, xs[-1][1]))
    area, x_prev, y_prev = 0.0, 0.0, START_LEVEL
    for x, y in xs:
        area += (x - x_prev) * y_prev
        x_prev, y_prev = x, y
    return area / (span * MAX_Y)


def score_turn(replies: list[Reply], turn: GoldTurn, judge: Judge, omegas=OMEGAS) -> dict[float, float]:
    points = drop_late_regressions(judged_points(in_span(replies, turn), turn, judge), turn.related[1])
    return {w: turn_score(points, turn.reply, w) for w in omegas}


def pauc(turn_scores: list[tuple[GoldTurn, dict[float, float]]], omegas=OMEGAS) -> dict:
    """PAUC@omega x 100: overall and per subset, means over all gold turns."""

    def mean(rows):
        return {f"{w:g}": 100 * sum(s[w] for _, s in rows) / len(rows) for w in omegas} if rows else {}

    subsets = sorted({t.subset for t, _ in turn_scores})
    return {
        "overall": mean(turn_scores),
        "subsets": {s: mean([r for r in turn_scores if r[0].subset == s]) for s in subsets},
        "turns": len(turn_scores),
    }


def parse_level(text: str) -> int | None:
    """The judge's level: the first 1, 2 or 3 standing alone in its reply."""
    m = re.search(r"(?<!\d)(?<!\d\.)([123])(?!\d)(?!\.\d)", text or "")
    return int(m.group(1)) if m else None


class CachedLevelJudge:
    """A three-level judge over an OpenAI-compatible endpoint (``utils.openai_client``), with every answer
    cached on disk by its prompt, so a re-run asks nothing twice. Failures (no answer, no parsable
    level) are counted and named, never scored."""

    def __init__(self, client, cache_file: Path):
        self.client, self.cache_file = client, Path(cache_file)
        self.cache: dict[str, str] = {}
        if self.cache_file.is_file():
            for line in self.cache_file.read_text().splitlines():
                row = json.loads(line)
                self.cache[row["key"]] = row["reply"]
        self.failures: list[str] = []
        self.asked = 0
        self._dead = 0  # requests in a row with no answer at all

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps([self.client.model, prompt]).encode()).hexdigest()

    def __call__(self, question: str, gold: str, answer: str) -> int | None:
        from evostreaming.utils.openai_client import RemoteError

        prompt = JUDGE_PROMPT.format(question=question, gold=gold, answer=answer)
        key = self._key(prompt)
        reply = self.cache.get(key)
        if reply is None:
            try:
                reply = self.client.chat([{"role": "user", "content": prompt}], temperature=0, max_tokens=8)
            except RemoteError as exc:
                self.failures.append(f"no answer: {str(exc).splitlines()[0][:120]}")
                self._dead += 1
                if self._dead >= 3:  # the judge is gone: stop, keeping the answers cached so far
                    raise PaucInputError(
                        f"the judge did not answer {self._dead} times in a row (last: {str(exc).splitlines()[0]}); "
                        "PAUC not computed. Its answers so far are cached: run the same report again once it is up"
                    ) from None
                return None
            self._dead = 0
            self.asked += 1
            self.cache[key] = reply
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_file, "a") as f:  # appended as it goes: an interrupted report keeps them
                f.write(json.dumps({"key": key, "reply": reply}) + "\n")
        level = parse_level(reply)
        if level is None:
            self.failures.append(f"no level 1-3 in {reply[:60]!r}")
        return level


class PaucInputError(ValueError):
    """A saved run PAUC cannot be computed from (not ProactiveVideoQA, or made before its spans were kept)."""


def gold_turns(row: dict) -> list[GoldTurn]:
    """The gold answer turns of a saved trajectory row (kept in its sample's ``meta`` by the loader)."""
    meta = row["sample"].get("meta") or {}
    if meta.get("source") != "proactivevideoqa":
        raise PaucInputError(f"sample {row['id']} is not ProactiveVideoQA's (eval run --benchmark proactivevideoqa)")
    if "pauc" not in meta:
        raise PaucInputError(
            f"sample {row['id']} was run before its reply and related spans were kept; run 'eval run' again "
            "into a new --output"
        )
    return [
        GoldTurn(
            row["id"], meta["subset"], meta["pauc"]["question"], t["content"], tuple(t["reply"]), tuple(t["related"])
        )
        for t in meta["pauc"]["turns"]
    ]


def row_replies(row: dict) -> list[Reply]:
    """What the model said and when: its non-empty replies at their step times (silent steps are not replies)."""
    return [Reply(float(s["time"]), s["text"]) for s in row["steps"] if s["action"] == "respond" and s["text"]]


def pauc_summary(rows: list[dict], judge: Judge, judge_name: str, omegas=OMEGAS) -> dict:
    """PAUC of saved trajectories (failed samples: their turns score as no reply, and are counted)."""
    scored = []
    failed = [r["id"] for r in rows if r.get("error")]
    for row in rows:
        replies = [] if row.get("error") else row_replies(row)
        for turn in gold_turns(row):
            scored.append((turn, score_turn(replies, turn, judge, omegas)))
    summary = pauc(scored, omegas)
    failures = getattr(judge, "failures", [])
    summary.update(
        metric="PAUC (ProactiveBench, arXiv 2507.09313; ../shared/data/proactivevideoqa/PAUC.md)",
        judge=judge_name,
        judge_failures=len(failures),
        judge_failure_reasons=sorted(set(failures))[:10],
        judge_requests=getattr(judge, "asked", None),
        parameters={"omegas": list(omegas), "start_level": START_LEVEL, "max_y": MAX_Y, "no_reply": NO_REPLY},
        samples=len(rows),
        samples_failed=len(failed),
    )
    return summary


def report(output: Path, judge_spec: str) -> dict:
    """PAUC of the saved run in ``output`` through the judge ``openai:URL,model=NAME``; writes
    ``summary.proactivevideoqa.json`` (the judge's answers cached in ``pauc-judge-cache.jsonl``)."""
    from evostreaming.eval.protocol import read_trajectories
    from evostreaming.utils.jobs import write_json
    from evostreaming.utils.openai_client import ChatClient
    from evostreaming.utils.openai_spec import parse_spec, redact

    if not judge_spec.startswith("openai:"):
        raise PaucInputError(
            f"PAUC grades replies on a three-level scale with an LLM judge: --judge openai:URL,model=NAME "
            f"(got --judge {judge_spec})"
        )
    spec = parse_spec(judge_spec, flag="--judge", need_model=True)
    bounds = {k: v for k, v in (("timeout_s", spec.timeout_s), ("retries", spec.retries)) if v is not None}
    client = ChatClient(spec.url, spec.model, api_key=spec.api_key, **bounds)
    judge = CachedLevelJudge(client, Path(output) / "pauc-judge-cache.jsonl")
    summary = pauc_summary(read_trajectories(output), judge, redact(judge_spec))
    write_json(Path(output) / "summary.proactivevideoqa.json", summary)
    return summary
