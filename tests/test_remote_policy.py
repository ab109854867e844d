"""`eval run --policy openai:...` against our own server's /v1/chat/completions (a real server started
here), and `--policy realtime:...` against its WebSocket: on the pocket model each takes the same action
as the local streaming session on >= 99% of the steps of a ShapesWorld benchmark, and scores within 1
point; `--concurrency` runs streams at once and resumes."""

import contextlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import free_port
from evostreaming.world.bench import make_bench

pytestmark = pytest.mark.slow


def _eval(bench, out, *args):
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(bench), "--output", str(out)]
    res = subprocess.run([*cmd, "--timelines", "0", *args], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    actions = {(r["id"], s["step"]): s["action"] for r in rows for s in r["steps"]}
    return json.loads((out / "summary.json").read_text()), actions


@contextlib.contextmanager
def _serve(*args: str):
    """`evostreaming serve pocket ARGS` on a free loopback port, until the block ends; yields the port."""
    port = free_port()
    cmd = [sys.executable, "-m", "evostreaming.cli", "serve", "pocket", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:  # blocks until the server listens
            if "Uvicorn running on" in line:
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    """`evostreaming serve pocket` on 127.0.0.1, set for evaluation: unbounded memory like the local
    run, frames as fast as the model steps, room for 4 streams; yields its port."""
    with _serve("--memory-window", "0", "--max-fps", "1000", "--max-sessions", "4") as port:
        yield port


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("agree")
    make_bench(11, 6, root / "bench")
    summary, actions = _eval(root / "bench", root / "local", "--model", "pocket")
    return root, summary, actions


def _agrees(local, a, remote, b):
    assert a.keys() == b.keys() and len(a) > 30
    agree = sum(a[k] == b[k] for k in a) / len(a)
    assert agree >= 0.99, f"{agree:.3f} of {len(a)} steps agree"
    assert abs(local["overall"] - remote["overall"]) <= 1.0


def _replies(root, name):
    """(this policy's, the local session's) text and length in model tokens, where both responded."""
    rows = {r["id"]: r for r in map(json.loads, (root / "local" / "trajectories.jsonl").read_text().splitlines())}
    pairs = []
    for r in map(json.loads, (root / name / "trajectories.jsonl").read_text().splitlines()):
        for mine, theirs in zip(r["steps"], rows[r["id"]]["steps"], strict=True):
            if mine["action"] == theirs["action"] == "respond":
                pairs.append(((mine["text"], mine["tokens"]), (theirs["text"], theirs["tokens"])))
    assert pairs
    return pairs


def test_the_openai_policy_on_our_server_agrees_with_the_local_session(server, local_run):
    root, local, a = local_run
    remote, b = _eval(root / "bench", root / "openai", "--policy", f"openai:http://127.0.0.1:{server}/v1,model=pocket")
    _agrees(local, a, remote, b)
    # the same replies and lengths: earlier replies travel back as generated (the server does not strip
    # them, so " right" is re-tokenized as one token) and the length comes from the server's usage
    assert all(m == t for m, t in _replies(root, "openai"))
    run = json.loads((root / "openai" / "run.json").read_text())
    assert run["protocol"]["remote_policy"].startswith("openai:http://127.0.0.1")


def test_the_realtime_policy_at_concurrency_2_agrees_with_the_local_session(server, local_run):
    """Each stream is one WebSocket session of the server, two at once; same actions, same score,
    and the replies' token counts come from the server (response.done)."""
    root, local, a = local_run
    url = f"realtime:ws://127.0.0.1:{server}/v1/realtime"
    remote, b = _eval(root / "bench", root / "realtime", "--policy", url, "--concurrency", "2")
    _agrees(local, a, remote, b)
    assert all(m == t for m, t in _replies(root, "realtime"))  # the server's own session: the same replies


def test_an_interrupted_concurrent_run_resumes_without_redoing_finished_streams(server, local_run):
    """A run at concurrency 2 that lost its last 3 streams (as a crash leaves the file) re-runs only
    those 3: the finished lines stay byte for byte."""
    root, _, _ = local_run
    url = f"realtime:ws://127.0.0.1:{server}/v1/realtime"
    out = root / "resume"
    _eval(root / "bench", out, "--policy", url, "--concurrency", "2")
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    kept = lines[:-3]
    (out / "trajectories.jsonl").write_text("".join(x + "\n" for x in kept))
    _eval(root / "bench", out, "--policy", url, "--concurrency", "2")
    again = (out / "trajectories.jsonl").read_text().splitlines()
    assert again[: len(kept)] == kept and len(again) == len(lines)
    assert {json.loads(x)["id"] for x in again} == {json.loads(x)["id"] for x in lines}


def test_a_malformed_policy_is_refused_before_anything_runs(tmp_path):
    make_bench(1, 1, tmp_path / "bench")
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(tmp_path / "bench")]
    res = subprocess.run([*cmd, "--output", str(tmp_path / "o"), "--policy", "vllm:x"], capture_output=True, text=True)
    assert res.returncode == 2 and "openai:URL,model=NAME" in res.stderr + res.stdout
    assert "realtime:ws://HOST:PORT/v1/realtime" in " ".join((res.stderr + res.stdout).split())


@pytest.mark.parametrize("scheme", ["realtime", "openai"])
def test_a_dead_server_stops_the_run_before_any_stream_with_the_reason(tmp_path, scheme):
    make_bench(1, 1, tmp_path / "bench")
    port = free_port()
    spec = {
        "realtime": f"realtime:ws://127.0.0.1:{port}/v1/realtime",
        "openai": f"openai:http://127.0.0.1:{port}/v1,model=m",
    }[scheme]
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(tmp_path / "bench")]
    res = subprocess.run([*cmd, "--output", str(tmp_path / "o"), "--policy", spec], capture_output=True, text=True)
    text = " ".join((res.stderr + res.stdout).split())
    reason = {"realtime": "cannot connect", "openai": "the server does not answer"}[scheme]
    assert res.returncode == 2 and reason in text, text[-800:]
    assert not (tmp_path / "o" / "trajectories.jsonl").exists()


def test_a_server_that_dies_mid_run_fails_the_stream_with_its_reason(tmp_path):
    """Connection refused when a stream opens (the server went away after the check): that sample is
    recorded as failed with the reason, not a crash of the run."""
    from evostreaming.eval.protocol import run_sample
    from evostreaming.eval.remote import RemoteSettings, make_remote_policy
    from evostreaming.eval.schema import Sample

    policy = make_remote_policy(
        f"realtime:ws://127.0.0.1:{free_port()}/v1/realtime", RemoteSettings(system_prompt="s", marker="<silent>")
    )
    sample = Sample.model_construct(id="s1", video=str(tmp_path / "none.mp4"), fps=0.5, duration=4.0, turns=[])
    row = run_sample(policy, sample)
    assert row["steps"] == [] and "cannot connect" in row["error"] and "evostreaming serve" in row["error"]


def test_concurrency_with_a_local_model_is_refused_with_the_ways_to_scale(tmp_path):
    make_bench(1, 1, tmp_path / "bench")
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(tmp_path / "bench")]
    args = ["--output", str(tmp_path / "o"), "--model", "pocket", "--concurrency", "2"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True)
    text = " ".join((res.stderr + res.stdout).split())
    assert res.returncode == 2 and "--policy realtime:" in text and "accelerate launch" in text


def test_the_realtime_policy_refuses_a_server_whose_memory_bound_differs(server, tmp_path):
    """The server's sessions bound memory (serve --memory-window): a run asking another bound stops at
    once and says how to start the server, instead of scoring a different protocol."""
    make_bench(1, 1, tmp_path / "bench")
    url = f"realtime:ws://127.0.0.1:{server}/v1/realtime"
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(tmp_path / "bench")]
    args = ["--output", str(tmp_path / "o"), "--policy", url, "--memory-window", "30"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True)
    text = " ".join((res.stderr + res.stdout).split())
    assert res.returncode == 2 and "keeps 0 s of frames" in text and "--memory-window 30" in text


def _history(n_users: int) -> list[dict]:
    messages = [{"role": "system", "content": "s"}]
    for k in range(n_users):
        messages.append({"role": "user", "content": f"frame {k}"})
        if k < n_users - 1:
            messages.append({"role": "assistant", "content": f"reply {k}"})
    return messages


def test_bounded_memory_for_a_resent_history_drops_whole_old_turns_in_blocks():
    from evostreaming.eval.remote import trim_history

    messages = _history(8)
    assert trim_history(messages, window=8, block=2) == 0 and len(messages) == 16
    messages = _history(9)  # one over: drop 2 (a block), keep the newest 7 turns
    assert trim_history(messages, window=8, block=2) == 2
    assert messages[0]["role"] == "system"
    assert [m["content"] for m in messages if m["role"] == "user"] == [f"frame {k}" for k in range(2, 9)]
    assert [m["content"] for m in messages[1:3]] == ["frame 2", "reply 2"]  # pairs stay whole
    assert messages[-1] == {"role": "user", "content": "frame 8"}  # the current frame is kept


def test_a_full_server_fails_a_stream_with_the_way_out(server):
    """With the server's 4 sessions held, a stream's session is refused; the reason says what to change."""
    from websockets.sync.client import connect

    from evostreaming.eval.remote import RealtimeError, RemoteSettings, make_remote_policy
    from evostreaming.eval.schema import Sample

    url = f"ws://127.0.0.1:{server}/v1/realtime"
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(url, subprotocols=["evostreaming.v1"])) for _ in range(4)]
        assert all(json.loads(ws.recv(timeout=60))["type"] == "session.created" for ws in held)
        policy = make_remote_policy(f"realtime:{url}", RemoteSettings(system_prompt="s", marker="<silent>"))
        with pytest.raises(RealtimeError, match="server full.*--concurrency.*--max-sessions"):
            policy.reset(Sample.model_construct(fps=0.5))


def test_two_launched_processes_each_running_two_remote_streams_equal_the_local_run(server, local_run, tmp_path):
    """`accelerate launch --num_processes 2` (gloo) with `--policy realtime:... --concurrency 2`: each
    process takes its shard and runs two server sessions at once; rank 0 merges. Same actions and
    Overall as the local session, every sample once."""
    root, local, a = local_run
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]
    cmd += ["-m", "evostreaming.cli", "eval", "run", "--data", str(root / "bench"), "--output", str(tmp_path / "o")]
    cmd += ["--timelines", "0", "--policy", f"realtime:ws://127.0.0.1:{server}/v1/realtime", "--concurrency", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "o" / "trajectories.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted({k[0] for k in a})  # each sample once
    b = {(r["id"], s["step"]): s["action"] for r in rows for s in r["steps"]}
    _agrees(local, a, json.loads((tmp_path / "o" / "summary.json").read_text()), b)
    assert json.loads((tmp_path / "o" / "run.json").read_text())["processes"] == 2


@pytest.fixture(scope="module")
def adapter_server():
    """A second server: the pocket model with the committed round-1 adapter (other weights than `server`),
    at the server's default --max-fps (4)."""
    adapter = Path(__file__).parent / "data" / "demo_round1_adapter"
    with _serve("--adapter", str(adapter), "--memory-window", "0", "--max-sessions", "4") as port:
        yield port


def test_a_resume_against_a_server_now_serving_other_weights_is_refused(server, adapter_server, tmp_path):
    """The job identity holds the weights the server names at session start, not only its URL."""
    make_bench(3, 1, tmp_path / "bench")
    first = f"realtime:ws://127.0.0.1:{server}/v1/realtime"
    _eval(tmp_path / "bench", tmp_path / "o", "--policy", first, "--limit", "1")
    run = json.loads((tmp_path / "o" / "job.json").read_text())
    assert run["identity"]["served_model"]["model"] == "pocket" and run["identity"]["served_model"]["adapter"] is None
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(tmp_path / "bench")]
    cmd += ["--output", str(tmp_path / "o"), "--timelines", "0", "--limit", "1"]
    # the same URL now answered by another server: here, another port stands for the restarted server
    res = subprocess.run(
        [*cmd, "--policy", f"realtime:ws://127.0.0.1:{adapter_server}/v1/realtime"], capture_output=True, text=True
    )
    text = " ".join((res.stderr + res.stdout).split())
    assert res.returncode == 2 and "served_model.adapter: null ->" in text, text[-800:]


def test_two_streams_at_the_servers_default_frame_rate_lose_no_frame(adapter_server, tmp_path):
    """--concurrency 2 against `serve`'s default --max-fps 4: paced under the limit, every frame is
    decided (no sample fails for 'rate' drops)."""
    make_bench(5, 6, tmp_path / "bench")
    url = f"realtime:ws://127.0.0.1:{adapter_server}/v1/realtime"
    summary, actions = _eval(tmp_path / "bench", tmp_path / "o", "--policy", url, "--concurrency", "2")
    assert summary["samples_total"] == 6 and summary["samples_failed"] == 0, summary.get("failures")
    assert len(actions) > 30


def test_a_wrong_realtime_path_is_not_reported_as_a_wrong_key(server):
    from evostreaming.eval.remote import RemoteSettings, RemoteUnavailable, make_remote_policy

    policy = make_remote_policy(
        f"realtime:ws://127.0.0.1:{server}/v1/realtim", RemoteSettings(system_prompt="s", marker="<silent>")
    )
    with pytest.raises(RemoteUnavailable) as caught:
        policy.check()
    assert "no realtime endpoint at this path" in str(caught.value) and "/v1/realtime" in str(caught.value)
    assert "API key" not in str(caught.value)
