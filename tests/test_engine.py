"""The batched engine: many sessions in one packed forward give each session exactly its serial results
(and those of one offline forward), whatever its batch partners; failures stay with their session."""

import functools

import numpy as np
import pytest
import torch

from conftest import offline_logits, tiny
from evostreaming.models import FAMILIES, family_names
from evostreaming.stream.engine import BatchEngine, can_pool
from evostreaming.stream.memory import MemoryPolicy
from evostreaming.stream.session import SessionConfig, StreamingSession

HYBRID = [n for n, f in FAMILIES.items() if f.adapter.hybrid_memory or n == "minicpmv4_7"]
PACKED = [n for n in family_names() if n not in HYBRID]
STEPS = 4


def _frames(seed: int, n: int = STEPS):
    rng = np.random.default_rng(seed)
    # sizes differ between sessions and steps, so image token counts differ inside one pack
    return [rng.integers(0, 255, (56 + 14 * ((k + seed) % 3), 84, 3), dtype=np.uint8) for k in range(n)]


def _config(i: int) -> SessionConfig:
    """Session i's settings: greedy / always silent / always respond; reply lengths; eviction timing."""
    return SessionConfig(
        max_new_tokens=2 + i,
        silence_threshold=[None, 0.0, 1.0][i % 3],
        memory=MemoryPolicy(window_frames=1 + i) if i in (1, 2) else MemoryPolicy(),
    )


def _question(i: int, k: int) -> str | None:
    return "What color is the square?" if (k + i) % 3 == 1 else None


def _serial(tm, i: int, keep_inputs: bool = True) -> tuple[StreamingSession, list]:
    s = StreamingSession(tm.model, tm.processor, config=_config(i), keep_inputs=keep_inputs)
    return s, [s.step(f, float(k), _question(i, k)) for k, f in enumerate(_frames(i))]


def _batched(tm, ids: list[int], engine: BatchEngine | None = None, keep_inputs: bool = True):
    engine = engine or BatchEngine(tm.model)
    sessions = [
        engine.attach(StreamingSession(tm.model, tm.processor, config=_config(i), keep_inputs=keep_inputs)) for i in ids
    ]
    frames = {i: _frames(i) for i in ids}
    results = {i: [] for i in ids}
    for k in range(STEPS):
        out = engine.run([(s, frames[i][k], float(k), _question(i, k)) for i, s in zip(ids, sessions, strict=True)])
        for i, r in zip(ids, out, strict=True):
            results[i].append(r)
    return engine, dict(zip(ids, sessions, strict=True)), results


def _same_steps(a: list, b: list) -> None:
    assert [(r.action, r.text, r.n_tokens) for r in a] == [(r.action, r.text, r.n_tokens) for r in b]
    for x, y in zip(a, b, strict=True):
        assert abs(x.silence_prob - y.silence_prob) <= 1e-5
        assert (x.cache_tokens, x.next_position) == (y.cache_tokens, y.next_position)


@pytest.mark.parametrize("family", PACKED)
def test_batched_steps_equal_serial_steps_and_the_pool_holds_the_same_keys(family):
    tm = tiny(family)
    engine, sessions, batched = _batched(tm, [0, 1, 2])
    assert engine.stats.packed_forwards > 0 and engine.stats.forwards == engine.stats.packed_forwards
    actions = set()
    for i, s in sessions.items():
        ref, steps = _serial(tm, i)
        _same_steps(steps, batched[i])
        actions |= {r.action for r in steps}
        if not s.config.memory.bounded:  # logits of every fed token, side by side
            assert len(ref.logit_log) == len(s.logit_log)
            assert max(float((x - y).abs().max()) for x, y in zip(ref.logit_log, s.logit_log, strict=True)) <= 1e-4
        # keys and values, after the evictions of the bounded sessions: the pool equals the own cache
        for n, layer in enumerate(ref.cache.layers):
            keys, values = engine.pool.gather_layer(s.kv.sid, n)
            assert keys.shape == layer.keys.shape
            assert float((keys - layer.keys).abs().max()) <= 1e-5
            assert float((values - layer.values).abs().max()) <= 1e-5
    assert actions == {"silent", "respond"}


@pytest.mark.parametrize("family", ["qwen3_vl", "llava"])
def test_batched_logits_equal_one_offline_forward(family):
    tm = tiny(family)
    _, sessions, _ = _batched(tm, [0, 3])
    for s in sessions.values():
        with pytest.raises(RuntimeError, match="engine"):
            s.sync()  # the turn's end waits for the next step: a pooled session is fed by its engine only
        ref = offline_logits(s, tm.model)
        inc = torch.cat(s.logit_log)
        assert inc.shape == ref.shape  # the speculative marker heads that were cropped left no rows behind
        assert float((inc - ref).abs().max()) <= 1e-4


def test_a_sessions_results_do_not_depend_on_its_batch_partners():
    tm = tiny("qwen2_5_vl")
    _, alone, r_alone = _batched(tm, [3])
    _, crowd, r_crowd = _batched(tm, [0, 3, 1, 2])
    _same_steps(r_alone[3], r_crowd[3])
    a, b = alone[3].logit_log, crowd[3].logit_log
    assert max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True)) <= 1e-5


def test_a_silent_frame_costs_one_forward_where_the_cache_can_be_cropped():
    tm = tiny("qwen3_vl")
    quiet = SessionConfig(silence_threshold=0.0)  # always silent
    head = len(StreamingSession(tm.model, tm.processor, config=quiet)._marker_ids) - 1
    assert head >= 1  # the marker has a head to speculate on
    one = StreamingSession(tm.model, tm.processor, config=quiet)
    two = StreamingSession(tm.model, tm.processor, config=quiet, speculate=False)
    for k, f in enumerate(_frames(0, 3)):
        a, b = one.step(f, k), two.step(f, k)
        assert a.action == b.action == "silent"
        assert abs(a.silence_prob - b.silence_prob) <= 1e-5
    assert (one.forwards, two.forwards) == (3, 6)


def test_hybrid_families_step_serially_inside_the_engine():
    tm = tiny(HYBRID[0])
    engine, sessions, batched = _batched(tm, [0, 2])
    assert engine.stats.packed_forwards == 0 and engine.stats.forwards > 0
    assert not any(s.kv.pooled for s in sessions.values())
    assert not can_pool(tm.model, sessions[0])
    for i in sessions:
        _same_steps(_serial(tm, i)[1], batched[i])
    # a hybrid model keeps two forwards per silent frame (its recurrent state cannot be cropped)
    s = StreamingSession(tm.model, tm.processor, config=SessionConfig(silence_threshold=0.0))
    s.step(_frames(0, 1)[0], 0.0)
    assert s.forwards == 2


def test_a_bad_frame_fails_only_its_own_session():
    tm = tiny("qwen2_5_vl")
    engine = BatchEngine(tm.model)
    good = [engine.attach(StreamingSession(tm.model, tm.processor, config=_config(i))) for i in (0, 1)]
    bad = engine.attach(StreamingSession(tm.model, tm.processor, config=_config(2)))
    out = engine.run(
        [(good[0], _frames(0)[0], 0.0), (bad, np.zeros((0, 5, 3), np.uint8), 0.0), (good[1], _frames(1)[0], 0.0)]
    )
    assert isinstance(out[1], Exception) and not isinstance(out[0], Exception) and not isinstance(out[2], Exception)
    for i, r in zip((0, 1), (out[0], out[2]), strict=True):
        s = StreamingSession(tm.model, tm.processor, config=_config(i))
        _same_steps([s.step(_frames(i)[0], 0.0)], [r])
    # the failed session goes on with its next frame, as if the bad one never came
    again = engine.run([(bad, _frames(2)[0], 1.0)])[0]
    s = StreamingSession(tm.model, tm.processor, config=_config(2))
    _same_steps([s.step(_frames(2)[0], 1.0)], [again])


def test_a_packed_forward_that_one_session_breaks_is_split_until_only_it_fails():
    tm = tiny("qwen2_5_vl")
    engine = BatchEngine(tm.model)
    sessions = [engine.attach(StreamingSession(tm.model, tm.processor, config=_config(i))) for i in (0, 1, 2)]
    poisoned = sessions[1]
    vocab = tm.model.get_input_embeddings().weight.shape[0]
    poisoned._pending[0].segment.input_ids[0] = vocab + 7  # an id past the embedding table: the forward raises
    out = engine.run([(s, _frames(i)[0], 0.0) for i, s in enumerate(sessions)])
    assert isinstance(out[1], IndexError)
    assert engine.stats.splits >= 1
    for i in (0, 2):
        s = StreamingSession(tm.model, tm.processor, config=_config(i))
        _same_steps([s.step(_frames(i)[0], 0.0)], [out[i]])
    assert poisoned.cache_tokens == 0 and poisoned.next_pos == 0  # nothing of the failed step stayed
    assert poisoned.step_index == -1 and [p.kind for p in poisoned._pending] == ["system"]


def test_out_of_memory_halves_the_batch_and_every_session_still_steps(monkeypatch):
    tm = tiny("qwen2_5_vl")
    engine = BatchEngine(tm.model)
    real = type(tm.model).forward
    sizes = []

    @functools.wraps(real)  # the session reads the forward's signature for the cache's keyword
    def forward(self, *args, **kwargs):
        n = kwargs["input_ids"].shape[1]
        sizes.append(n)
        if kwargs.get("cache") is engine.pool and n > 150:  # a pack this big "does not fit"
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(tm.model), "forward", forward)
    _, sessions, batched = _batched(tm, [0, 1, 2, 3], engine=engine, keep_inputs=False)
    assert engine.stats.splits >= 1 and not engine.stats.failures
    assert max(sizes) > 150  # the first try was too big
    monkeypatch.setattr(type(tm.model), "forward", real)
    for i in sessions:
        _same_steps(_serial(tm, i, keep_inputs=False)[1], batched[i])


def test_the_token_budget_bounds_each_pack_and_keeps_results():
    tm = tiny("qwen3_vl")
    budget = 120
    engine = BatchEngine(tm.model, max_batch_tokens=budget)
    packs = []
    real = engine._forward

    def forward(batch):
        packs.append((len(batch), sum(t.chunk.n_tokens for t in batch)))
        return real(batch)

    engine._forward = forward
    _, sessions, batched = _batched(tm, [0, 1, 2], engine=engine, keep_inputs=False)
    assert any(n > 1 for n, _ in packs)  # still packed several at a time
    assert all(tokens <= budget for n, tokens in packs if n > 1)  # a chunk over budget goes alone
    assert any(tokens > budget for n, tokens in packs if n == 1)  # (this stream has such chunks)
    for i in sessions:
        _same_steps(_serial(tm, i, keep_inputs=False)[1], batched[i])


def test_closed_sessions_give_their_slots_back():
    tm = tiny("qwen2_5_vl")
    engine, sessions, _ = _batched(tm, [0, 1], keep_inputs=False)
    used = sum(s.cache_tokens for s in sessions.values())
    assert used > 0 and len(engine.pool._free) == engine.pool.capacity - used
    for s in sessions.values():
        s.close()
    assert len(engine.pool._free) == engine.pool.capacity
    with pytest.raises(ValueError, match="max-batch-tokens"):
        BatchEngine(tm.model, max_batch_tokens=0)


@pytest.mark.slow
def test_eval_run_batch_streams_gives_the_serial_trajectories_and_resumes_across_settings(tmp_path):
    import json

    from typer.testing import CliRunner

    from evostreaming.cli import app
    from evostreaming.world.bench import make_bench

    make_bench(11, 4, tmp_path / "bench")

    def run(out, *extra):
        args = ["eval", "run", "--data", str(tmp_path / "bench"), "--output", str(out), "--model", "pocket"]
        res = CliRunner().invoke(app, [*args, "--timelines", "0", *extra])
        assert res.exit_code == 0, res.output
        rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
        steps = {r["id"]: [(s["action"], s["text"], s["tokens"]) for s in r["steps"]] for r in rows}
        return json.loads((out / "summary.json").read_text())["overall"], steps

    serial = run(tmp_path / "serial")
    batched = run(tmp_path / "batched", "--batch-streams", "3", "--max-batch-tokens", "2048")
    assert batched == serial
    assert sum(a == "respond" for s in serial[1].values() for a, _, _ in s) > 0  # replies were packed too
    # batching is not part of the job: the batched run's folder resumes (nothing to redo) at 1 stream
    assert run(tmp_path / "batched") == serial


def test_batch_streams_is_refused_without_a_local_model(tmp_path):
    from evostreaming.eval.run import EvalRunConfig

    (tmp_path / "s.jsonl").write_text("")
    with pytest.raises(ValueError, match="--concurrency"):
        EvalRunConfig(benchmark="jsonl", data=tmp_path / "s.jsonl", baseline="oracle", batch_streams=4)
    with pytest.raises(ValueError, match="batch-streams"):
        EvalRunConfig(benchmark="jsonl", data=tmp_path / "s.jsonl", model="pocket", batch_streams=0)
