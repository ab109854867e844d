"""`eval run --policy openai:...` against our own server's /v1/chat/completions (a real server started
here): on the pocket model it takes the same action as the local streaming session on >= 99% of the
steps of a ShapesWorld benchmark, and scores within 1 point."""

import json
import socket
import subprocess
import sys
import threading

import pytest

from evostreaming.world.bench import make_bench

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _eval(bench, out, *args):
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(bench), "--output", str(out)]
    res = subprocess.run([*cmd, "--timelines", "0", *args], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    actions = {(r["id"], s["step"]): s["action"] for r in rows for s in r["steps"]}
    return json.loads((out / "summary.json").read_text()), actions


def test_the_openai_policy_on_our_server_agrees_with_the_local_session(tmp_path):
    make_bench(11, 6, tmp_path / "bench")
    port = _free_port()
    cmd = [sys.executable, "-m", "evostreaming.cli", "serve", "pocket", "--port", str(port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:  # blocks until the server listens
            if "Uvicorn running on" in line:
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        local, a = _eval(tmp_path / "bench", tmp_path / "local", "--model", "pocket")
        remote, b = _eval(
            tmp_path / "bench", tmp_path / "remote", "--policy", f"openai:http://127.0.0.1:{port}/v1,model=pocket"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert a.keys() == b.keys() and len(a) > 30
    agree = sum(a[k] == b[k] for k in a) / len(a)
    assert agree >= 0.99, f"{agree:.3f} of {len(a)} steps agree"
    assert abs(local["overall"] - remote["overall"]) <= 1.0
    run = json.loads((tmp_path / "remote" / "run.json").read_text())
    assert run["protocol"]["remote_policy"].startswith("openai:http://127.0.0.1")


def test_a_malformed_policy_is_refused_before_anything_runs(tmp_path):
    make_bench(1, 1, tmp_path / "bench")
    cmd = [sys.executable, "-m", "evostreaming.cli", "eval", "run", "--data", str(tmp_path / "bench")]
    res = subprocess.run([*cmd, "--output", str(tmp_path / "o"), "--policy", "vllm:x"], capture_output=True, text=True)
    assert res.returncode == 2 and "openai:URL,model=NAME" in res.stderr + res.stdout
