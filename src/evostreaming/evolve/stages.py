"""The EvoStreaming stages of one round. The model M(i) is data generator, relevance annotator and
roll-out policy; nothing here reads ground truth.

Each stage reads the previous stage's JSONL, appends one line per finished video to its own JSONL
(flushed), and on a re-run skips videos already done, so a crash loses at most one chunk.
Every line records the model, the round and the prompt version.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from evostreaming.evolve.backends import Request
from evostreaming.evolve.pool import PoolVideo
from evostreaming.evolve.prompts import Prompts
from evostreaming.utils.distributed import Ranks
from evostreaming.utils.jobs import write_atomic
from evostreaming.utils.jsonl import append_jsonl, read_jsonl
from evostreaming.video.sources import VideoSourceError

MAX_QUESTION_CHARS = 200


@dataclass
class StageContext:
    backend: object  # LocalBackend | OpenAIBackend
    prompts: Prompts
    out_dir: Path
    round: int
    model_name: str
    seed: int = 0
    chunk: int = 16
    progress: Callable[[str, int, int], None] | None = None  # (stage, done, total)
    frames_cache: dict = field(default_factory=dict)
    ranks: Ranks = field(default_factory=Ranks)  # a data-parallel run's place (accelerate launch)

    def stamp(self) -> dict:
        return {"model": self.model_name, "round": self.round, "prompt_version": self.prompts.version}

    def frames(self, video: PoolVideo):
        if video.id not in self.frames_cache:
            if len(self.frames_cache) > 256:
                self.frames_cache.clear()
            self.frames_cache[video.id] = video.frames()
        return self.frames_cache[video.id]


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _video_id(video: PoolVideo) -> str:
    return video.id


def _row_video(row: dict) -> str:
    return row["video"]


def _row_pair(row) -> tuple[str, str]:
    return (row["video"], row["question"])


def run_stage(
    ctx: StageContext,
    name: str,
    items: list,
    item_key: Callable[[object], Hashable],
    row_key: Callable[[dict], Hashable],
    chunk: int,
    work: Callable[[list, int], list[dict]],
    summarize: Callable[[list[dict]], dict],
    file: str | None = None,
    video_of: Callable[[object], PoolVideo] | None = None,
) -> list[dict]:
    """The loop every generating stage shares: skip the items whose rows ``<name>.jsonl`` already
    holds (``item_key(item) == row_key(row)``), run ``work(chunk, done_before)`` on the rest chunk by
    chunk, append its rows (flushed, so a crash loses at most one chunk), report progress, and record
    ``summarize(all rows)`` in ``stage_report.json``. Returns every row of the file (``file``,
    default ``<name>.jsonl``). With ``video_of``, an item whose video cannot be read is skipped and
    named in the report (``skipped_videos``), so one bad file never blocks the pool (a re-run tries
    it again)."""
    path = ctx.out_dir / (file or f"{name}.jsonl")
    r = ctx.ranks
    mine = path if r.world == 1 else path.with_name(f"{path.stem}.rank{r.rank}.jsonl")
    finished = {row_key(row) for row in read_jsonl(path)} | {row_key(row) for row in read_jsonl(mine)}
    todo = [it for it in items if item_key(it) not in finished]
    done = len(items) - len(todo)
    skipped: dict[str, str] = {}
    # Data-parallel: rank r takes chunks r, r + world, ... of the one-process chunking, with the same
    # offsets (sampling seeds) and batch compositions, so its rows are the ones one process would write.
    for i, part in enumerate(_chunks(todo, max(1, chunk))):
        if i % r.world == r.rank:
            readable = [it for it in part if video_of is None or _readable(ctx, video_of(it), skipped)]
            if readable:
                append_jsonl(mine, work(readable, done))
        done += len(part)
        _tick(ctx, name, done, len(items))
    if r.world > 1:
        skipped = _merge_ranks(ctx, path, items, item_key, row_key, skipped)
    rows = read_jsonl(path)
    if r.main:
        _report(ctx, name, {**summarize(rows), "skipped_videos": skipped})
    return rows


def _merge_ranks(ctx: StageContext, path: Path, items: list, item_key, row_key, skipped: dict) -> dict:
    """Every rank's file (and what the stage file held from before) into the stage file, in item
    order, as one process writes it; the rank files go. Returns the skipped videos of all ranks."""
    from accelerate.utils import gather_object

    r = ctx.ranks
    r.wait()
    every_skipped = {k: v for part in gather_object([skipped]) for k, v in part.items()}
    if r.main:
        rank_files = sorted(path.parent.glob(f"{path.stem}.rank*.jsonl"))
        order = {item_key(it): i for i, it in enumerate(items)}
        rows = read_jsonl(path) + [row for f in rank_files for row in read_jsonl(f)]
        rows.sort(key=lambda row: order.get(row_key(row), len(order)))
        write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))
        for f in rank_files:
            f.unlink()
    r.wait()
    return every_skipped


def _readable(ctx: StageContext, video: PoolVideo, skipped: dict[str, str]) -> bool:
    try:
        ctx.frames(video)
        return True
    except VideoSourceError as exc:
        skipped[video.id] = str(exc)
        return False


def _report(ctx: StageContext, stage: str, counts: dict) -> None:
    path = ctx.out_dir / "stage_report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report[stage] = {**counts, **ctx.stamp()}
    path.write_text(json.dumps(report, indent=2))


def _tick(ctx: StageContext, stage: str, done: int, total: int) -> None:
    if ctx.progress:
        ctx.progress(stage, done, total)


# -- 1. taxonomy -------------------------------------------------------------------------------
def parse_task_type(text: str, task_types: list[str]) -> str | None:
    t = text.strip().lower().rstrip(".")
    for tt in task_types:
        if t == tt or t.startswith(tt):
            return tt
    hits = [tt for tt in task_types if tt in t]
    return hits[0] if len(hits) == 1 else None


def stage_taxonomy(ctx: StageContext, videos: list[PoolVideo]) -> list[dict]:
    def work(chunk: list[PoolVideo], done: int) -> list[dict]:
        choices = ctx.prompts.task_types if ctx.prompts.closed_choices else None
        reqs = [Request(ctx.frames(v), ctx.prompts.taxonomy, choices) for v in chunk]
        outs = ctx.backend.generate(reqs, max_new_tokens=12)
        return [
            {"video": v.id, "task_type": parse_task_type(o, ctx.prompts.task_types), "raw": o, **ctx.stamp()}
            for v, o in zip(chunk, outs, strict=True)
        ]

    def summarize(rows: list[dict]) -> dict:
        return {"videos": len(rows), "unparsed": sum(r["task_type"] is None for r in rows)}

    return run_stage(ctx, "taxonomy", videos, _video_id, _row_video, ctx.chunk, work, summarize, video_of=lambda v: v)


def balance(rows: list[dict], task_types: list[str], per_type: int, seed: int) -> list[dict]:
    """Equal numbers per task type (as many as the rarest type allows, at most ``per_type``)."""
    rng = random.Random(seed)
    by_type = {tt: [r for r in rows if r["task_type"] == tt] for tt in task_types}
    n = min([per_type] + [len(v) for v in by_type.values() if v])
    out = []
    for tt in task_types:
        group = by_type[tt][:]
        rng.shuffle(group)
        out += group[:n]
    return out


# -- 2. self-questioning -----------------------------------------------------------------------
def clean_question(text: str) -> str | None:
    """Basic well-formedness (never the world's parser): one non-empty line, bounded length,
    ending like a question or a request."""
    t = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not t or len(t) > MAX_QUESTION_CHARS or not re.search(r"[?.]$", t) or len(t.split()) < 3:
        return None
    return t


def stage_questions(
    ctx: StageContext, selected: list[dict], videos: dict[str, PoolVideo], k: int, temperature: float = 1.0
) -> list[dict]:
    types = {r["video"]: r["task_type"] for r in selected}

    def work(chunk: list[PoolVideo], done: int) -> list[dict]:
        reqs = [
            Request(ctx.frames(v), ctx.prompts.question.format(task_type=types[v.id])) for v in chunk for _ in range(k)
        ]
        outs = ctx.backend.generate(reqs, max_new_tokens=24, temperature=temperature, seed=ctx.seed + done)
        rows = []
        for i, v in enumerate(chunk):
            raw = outs[i * k : (i + 1) * k]
            kept = []
            for o in raw:
                q = clean_question(o)
                if q and q not in kept:
                    kept.append(q)
            rows.append(
                {
                    "video": v.id,
                    "task_type": types[v.id],
                    "questions": kept,
                    "raw": raw,
                    "malformed": sum(clean_question(o) is None for o in raw),
                    "duplicates": sum(clean_question(o) is not None for o in raw) - len(kept),
                    **ctx.stamp(),
                }
            )
        return rows

    def summarize(rows: list[dict]) -> dict:
        return {
            "videos": len(rows),
            "questions": sum(len(r["questions"]) for r in rows),
            "malformed": sum(r["malformed"] for r in rows),
            "duplicates": sum(r["duplicates"] for r in rows),
        }

    items = [videos[r["video"]] for r in selected]
    return run_stage(ctx, "questions", items, _video_id, _row_video, ctx.chunk // max(1, k), work, summarize)


# -- 3. relevance annotation -------------------------------------------------------------------
def parse_yes_no(text: str) -> bool | None:
    t = text.strip().lower()
    if t.startswith("yes"):
        return True
    if t.startswith("no"):
        return False
    return None


def segment(frames, k: int):
    """Segment k: frames k-1 and k (frame 0 twice for k = 0), so a change is visible."""
    return [frames[max(0, k - 1)], frames[k]]


def stage_relevance(ctx: StageContext, questions: list[dict], videos: dict[str, PoolVideo]) -> list[dict]:
    def work(chunk: list[tuple[str, str]], done: int) -> list[dict]:
        reqs, spans = [], []
        for vid, q in chunk:
            frames = ctx.frames(videos[vid])
            start = len(reqs)
            fps = videos[vid].fps
            reqs += [
                Request(
                    segment(frames, k),
                    ctx.prompts.relevance.format(question=q, start=max(0, k - 1) / fps, end=k / fps),
                    ["yes", "no"] if ctx.prompts.closed_choices else None,
                )
                for k in range(len(frames))
            ]
            spans.append((start, len(reqs)))
        outs = ctx.backend.generate(reqs, max_new_tokens=3)
        rows = []
        for (vid, q), (a, b) in zip(chunk, spans, strict=True):
            parsed = [parse_yes_no(o) for o in outs[a:b]]
            rows.append(
                {
                    "video": vid,
                    "question": q,
                    "relevance": [int(bool(p)) for p in parsed],
                    "unparsed": sum(p is None for p in parsed),
                    **ctx.stamp(),
                }
            )
        return rows

    def summarize(rows: list[dict]) -> dict:
        return {
            "pairs": len(rows),
            "segments": sum(len(r["relevance"]) for r in rows),
            "relevant": sum(sum(r["relevance"]) for r in rows),
            "unparsed": sum(r["unparsed"] for r in rows),
        }

    items = [(r["video"], q) for r in questions for q in r["questions"]]
    return run_stage(ctx, "relevance", items, lambda it: it, _row_pair, ctx.chunk // 8, work, summarize)


# -- 4. causal roll-out ------------------------------------------------------------------------
def plan_rollout(relevance: list[int], ask_step: int) -> list[int]:
    """Steps at which the policy consults the model (it then speaks if the answer is new).

    The question is asked at ``ask_step``. If a segment up to then is relevant, the evidence is
    already in the past: answer at once. After that, answer at each relevant segment. Elsewhere
    the step is SILENT.
    """
    steps = []
    if any(relevance[: ask_step + 1]):
        steps.append(ask_step)
    steps += [k for k in range(ask_step + 1, len(relevance)) if relevance[k]]
    return steps


def stage_rollout(
    ctx: StageContext,
    relevance: list[dict],
    videos: dict[str, PoolVideo],
    n_samples: int,
    silence_marker: str,
    random_relevance: bool = False,
    ask_at_start: set[str] | None = None,
) -> list[dict]:
    """One trajectory per (video, question), at most ``n_samples``. With ``random_relevance`` the
    model's relevance labels are replaced by random ones with the same rate (the ablation).
    Questions about videos listed in ``ask_at_start`` (e.g. of the forward task types, whose
    evidence comes later) are asked at the first step instead of a random one."""
    rng = random.Random(ctx.seed)
    items = relevance
    if len(items) > n_samples:
        # the rows come grouped by task type (the balanced pool's order): a plain cut would drop
        # the last types; a seeded sample keeps them, in their order
        keep = sorted(random.Random(ctx.seed + 3).sample(range(len(items)), n_samples))
        items = [items[i] for i in keep]
    if random_relevance:
        rate = sum(sum(r["relevance"]) for r in items) / max(1, sum(len(r["relevance"]) for r in items))
        items = [{**r, "relevance": [int(rng.random() < rate) for _ in r["relevance"]]} for r in items]
    asks = {(r["video"], r["question"]): rng.randrange(0, max(1, len(r["relevance"]) - 2)) for r in items}
    for key in asks:
        if ask_at_start and key[0] in ask_at_start:
            asks[key] = 0

    def work(chunk: list[dict], done: int) -> list[dict]:
        reqs, where = [], []
        for r in chunk:
            frames = ctx.frames(videos[r["video"]])
            ask = asks[(r["video"], r["question"])]
            for k in plan_rollout(r["relevance"], ask):
                where.append((r["video"], r["question"], k))
                reqs.append(Request(frames[: k + 1], ctx.prompts.answer.format(question=r["question"])))
        outs = ctx.backend.generate(reqs, max_new_tokens=24) if reqs else []
        answers = {w: o.strip() for w, o in zip(where, outs, strict=True)}
        rows = []
        for r in chunk:
            ask = asks[(r["video"], r["question"])]
            steps, last, empty, repeated = [], None, 0, 0
            for k in range(len(r["relevance"])):
                reply = silence_marker
                a = answers.get((r["video"], r["question"], k))
                if a is not None:
                    if not a:
                        empty += 1
                    elif a == last:
                        repeated += 1  # nothing new to say
                    else:
                        reply, last = a, a
                steps.append({"step": k, "user_text": r["question"] if k == ask else None, "reply": reply})
            rows.append(
                {
                    "video": r["video"],
                    "question": r["question"],
                    "ask_step": ask,
                    "steps": steps,
                    "empty_answers": empty,
                    "repeated_answers": repeated,
                    "random_relevance": random_relevance,
                    **ctx.stamp(),
                }
            )
        return rows

    def summarize(rows: list[dict]) -> dict:
        return {
            "trajectories": len(rows),
            "steps": sum(len(r["steps"]) for r in rows),
            "responses": sum(1 for r in rows for s in r["steps"] if s["reply"] != silence_marker),
            "empty_answers": sum(r["empty_answers"] for r in rows),
            "repeated_answers": sum(r["repeated_answers"] for r in rows),
        }

    return run_stage(ctx, "rollout", items, _row_pair, _row_pair, ctx.chunk // 4, work, summarize, "rollouts.jsonl")


# -- 5. standardization ------------------------------------------------------------------------
def _offline_row(ctx: StageContext, video: str, source: str, frames, prompt: str, reply: str, **common) -> dict:
    """A self-replay training row: one offline exchange (see ``train.lora.offline_frames`` for ``frames``)."""
    turn = {"user_text": prompt, "reply": reply}
    return {
        "video": video,
        "layout": "offline",
        "source": source,
        "frames": frames,
        **common,
        "turns": [turn],
        **ctx.stamp(),
    }


def replay_rows(ctx: StageContext, rollouts: list[dict], fraction: float, **common) -> list[dict]:
    """Self-replay: offline exchanges the model itself produced during the roll-out. A roll-out
    answer at step k was generated offline (frames 0..k and the question in one message, the
    backend's system prompt); replaying some of them keeps the adapter from changing how the model
    answers outside a stream. At most ``fraction`` x trajectories, one per trajectory that has a
    response, at a random one of its responses (seeded)."""
    rng = random.Random(ctx.seed + 7)
    marker = common["marker"]
    with_answer = [r for r in rollouts if any(s["reply"] != marker for s in r["steps"])]
    picked = rng.sample(with_answer, min(len(with_answer), round(fraction * len(rollouts))))
    rows = []
    for r in picked:
        step = rng.choice([s for s in r["steps"] if s["reply"] != marker])
        prompt = ctx.prompts.answer.format(question=r["question"])
        rows.append(
            _offline_row(
                ctx, r["video"], "answer", step["step"] + 1, prompt, step["reply"], question=r["question"], **common
            )
        )
    return rows


def annotation_replay_rows(ctx: StageContext, fraction: float, n_trajectories: int, **common) -> list[dict]:
    """Self-replay of the model's own stage 1-3 outputs (its task type for a video, a question it
    wrote, a relevance label it gave to a segment), so that M(i+1) can still generate, annotate
    and classify for the next round. ``fraction`` x trajectories rows, a third of each kind, drawn
    uniformly (seeded) from this round's files."""
    rng = random.Random(ctx.seed + 11)
    n = round(fraction * n_trajectories)
    tax = [r for r in read_jsonl(ctx.out_dir / "taxonomy.jsonl") if r["task_type"]]
    qs = [(r, q) for r in read_jsonl(ctx.out_dir / "questions.jsonl") for q in r["questions"]]
    rel = [
        (r, k)
        for r in read_jsonl(ctx.out_dir / "relevance.jsonl")
        if not r["unparsed"]
        for k in range(len(r["relevance"]))
    ]
    p = ctx.prompts
    rows = [
        _offline_row(ctx, r["video"], "taxonomy", "all", p.taxonomy, r["task_type"], **common)
        for r in rng.sample(tax, min(len(tax), n // 3))
    ]
    rows += [
        _offline_row(ctx, r["video"], "question", "all", p.question.format(task_type=r["task_type"]), q, **common)
        for r, q in rng.sample(qs, min(len(qs), n // 3))
    ]
    rows += [
        _offline_row(
            ctx,
            r["video"],
            "relevance",
            [max(0, k - 1), k],  # the segment the model labelled (``segment``)
            p.relevance.format(question=r["question"]),
            "yes" if r["relevance"][k] else "no",
            **common,
        )
        for r, k in rng.sample(rel, min(len(rel), n - 2 * (n // 3)))
    ]
    return rows


def stage_standardize(
    ctx: StageContext,
    rollouts: list[dict],
    system_prompt: str,
    silence_marker: str,
    fps: float = 0.5,
    replay: float = 0.0,
    replay_annotations: float = 0.0,
) -> Path:
    """Write the training file: one streaming conversation per line, in the session's format, then
    (with ``replay`` > 0) the self-replay rows of ``replay_rows`` and (with ``replay_annotations``
    > 0) those of ``annotation_replay_rows``."""
    path = ctx.out_dir / "train.jsonl"
    # replayed exchanges keep the layout and system prompt the model generated them under
    common = {"fps": fps, "system": ctx.backend.system, "marker": silence_marker}
    replayed = replay_rows(ctx, rollouts, replay, **common)
    replayed += annotation_replay_rows(ctx, replay_annotations, len(rollouts), **common) if replay_annotations else []
    with open(path, "w", encoding="utf-8") as f:
        for r in rollouts:
            f.write(
                json.dumps(
                    {
                        "video": r["video"],
                        "question": r["question"],
                        "fps": fps,
                        "system": system_prompt,
                        "marker": silence_marker,
                        "turns": [{"user_text": s["user_text"], "reply": s["reply"]} for s in r["steps"]],
                        **ctx.stamp(),
                    }
                )
                + "\n"
            )
        for row in replayed:
            f.write(json.dumps(row) + "\n")
    sources = [r["source"] for r in replayed]
    by_source = {k: sources.count(k) for k in ("answer", "taxonomy", "question", "relevance")}
    _report(
        ctx, "standardize", {"conversations": len(rollouts), "replay": len(replayed), "replay_by_source": by_source}
    )
    return path
