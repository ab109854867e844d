"""Trustworthy runs, round 2 (docs/reliability.md): the cases a hostile user found still scoring silently
wrong or crashing. Each runs the real code path in process (the CLI through typer's runner) on files
made here; the ones that need a running server are in tests/test_remote_policy.py."""

import json
import shutil
import socket
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import free_port
from evostreaming.cli import app
from evostreaming.eval.schema import GoldAnswer, Sample, SampleFormatError, UserTurn, write_samples
from evostreaming.video.writer import write_mp4

runner = CliRunner()


def _clip(path, seconds=8, fps=2, value=0):
    frames = (np.full((32, 32, 3), (value + 15 * k) % 250, np.uint8) for k in range(seconds * fps))
    return write_mp4(frames, path, fps=fps)


def _bench(folder, n=2, seconds=8, **sample):
    samples = []
    for i in range(n):
        clip = _clip(folder / "videos" / f"c{i}.mp4", seconds, value=40 * i)
        fields = dict(
            id=f"s{i}",
            video=str(clip.relative_to(folder)),
            task="OCR",
            regime="RTVP",
            turns=[UserTurn(time=0.0, text="how many?")],
            answers=[GoldAnswer(time=2.0, answer="3", judge="number")],
        )
        samples.append(Sample(**{**fields, **sample}))
    write_samples(samples, folder / "samples.jsonl")
    return folder


def _cli(*args):
    res = runner.invoke(app, [str(a) for a in args])
    text = " ".join((res.output or "").split())  # rich wraps long lines
    assert "Traceback" not in text, text
    return res, text


def _eval(data, out, *extra):
    return _cli("eval", "run", "--data", data, "--output", out, "--timelines", "0", "--baseline", "oracle", *extra)


# -- times past the video's real end --------------------------------------------------------------
def test_a_gold_time_past_the_video_is_refused_even_when_the_duration_says_longer(tmp_path):
    from evostreaming.eval.benchmarks import load_benchmark

    data = _bench(tmp_path / "bench", n=1, seconds=8, duration=100.0)  # the file claims 100 s; the video has 8
    rows = [json.loads(line) for line in (data / "samples.jsonl").read_text().splitlines()]
    rows[0]["answers"][0]["time"] = 50.0
    (data / "samples.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(SampleFormatError, match=r"sample 's0': answers\[0\].time 50.0 s is after .*c0.mp4 lasts 8"):
        load_benchmark("jsonl", data)


def test_a_streamingbench_question_past_its_clip_is_refused(tmp_path):
    from evostreaming.eval.benchmarks import load_benchmark

    _clip(tmp_path / "videos" / "sample_1_real.mp4", seconds=16)
    question = {"task_type": "Object Perception", "question": "What?", "options": ["A. x", "B. y"], "answer": "A"}
    entries = [{"video_path": "./videos/sample_1_real.mp4", "questions": [{**question, "time_stamp": "1:00:00"}]}]
    (tmp_path / "questions_real.json").write_text(json.dumps(entries))
    with pytest.raises(SampleFormatError, match=r"sample 'sb-questions_real-0-0': turns\[0\].time 3600.0 s is after"):
        load_benchmark("streamingbench", tmp_path / "questions_real.json")


def test_a_streamingbench_list_holding_a_string_names_the_entry(tmp_path):
    from evostreaming.eval.benchmarks.streamingbench import load_streamingbench

    (tmp_path / "q.json").write_text(json.dumps(["sample_1.mp4"]))
    with pytest.raises(SampleFormatError, match=r"q.json: entry 0: expected an object with a 'questions' list"):
        load_streamingbench(tmp_path / "q.json")


def test_an_empty_benchmark_file_says_it_holds_no_samples_before_any_work(tmp_path):
    (tmp_path / "q.json").write_text("[]")
    res, text = _eval(tmp_path / "q.json", tmp_path / "run", "--benchmark", "streamingbench")
    assert res.exit_code == 2 and "q.json: holds no samples" in text and "run 'evostreaming eval run" not in text
    assert not (tmp_path / "run").exists()


# -- ProactiveVideoQA items --------------------------------------------------------------------------
def _pvqa_item(qid="Q0", **changes):
    item = {
        "video": "v.mp4",
        "question_id": qid,
        "duration": 20.0,
        "conversation": [{"role": "user", "content": "Tell me when the cup falls.", "time": 0}],
        "answer": [{"content": "It falls.", "related_timespan": [4.0, 6.0], "reply_timespan": [5.0, 7.0]}],
    }
    item.update(changes)
    return item


def _pvqa(tmp_path, items):
    from evostreaming.eval.benchmarks.proactivevideoqa import load_proactivevideoqa

    (tmp_path / "WEB").mkdir(exist_ok=True)
    (tmp_path / "WEB" / "anno.json").write_text(json.dumps(items))
    return load_proactivevideoqa(tmp_path / "WEB")


def test_two_proactivevideoqa_items_with_one_question_id_are_refused(tmp_path):
    assert len(_pvqa(tmp_path, [_pvqa_item("Q0"), _pvqa_item("Q1")])) == 2
    with pytest.raises(SampleFormatError, match=r"item 1: field 'question_id': 'Q0' is also item 0's"):
        _pvqa(tmp_path, [_pvqa_item("Q0"), _pvqa_item("Q0")])


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"answer": ["It falls."]}, "field 'answer'"),
        ({"answer": "It falls."}, "field 'answer'"),
        ({"conversation": ["Tell me when the cup falls."]}, "field 'conversation'"),
        ({"duration": "long"}, "field 'duration': 'long' is not a number"),
        ({"conversation": [{"role": "user", "content": "hi", "time": "soon"}]}, "field 'conversation[0].time'"),
        ({"answer": [{"content": "x", "related_timespan": [1, 2], "reply_timespan": "late"}]}, "answer[0].reply"),
    ],
)
def test_a_malformed_proactivevideoqa_item_is_one_line_naming_the_item_and_field(tmp_path, changes, names):
    with pytest.raises(SampleFormatError) as caught:
        _pvqa(tmp_path, [_pvqa_item("Q0"), _pvqa_item("Q1", **changes)])
    message = str(caught.value)
    assert "anno.json: item 1: " in message and names in message and "\n" not in message


def test_a_whole_item_check_is_one_line(tmp_path):
    turn = {"role": "user", "content": "subtitle", "time": 30.0}  # after the 20 s duration
    with pytest.raises(SampleFormatError) as caught:
        _pvqa(tmp_path, [_pvqa_item("Q0", conversation=[_pvqa_item()["conversation"][0], turn])])
    assert "item 0: " in str(caught.value) and "turns[1].time 30.0 s" in str(caught.value)
    assert "\n" not in str(caught.value) and "errors.pydantic.dev" not in str(caught.value)


def test_user_text_in_an_error_is_printed_as_is_not_as_markup(tmp_path):
    """The CLI's error line shows '[start, end]' (rich markup would eat it as a style tag)."""
    bad = _pvqa_item("Q0", answer=[{"content": "x", "related_timespan": "?", "reply_timespan": [1, 2]}])
    (tmp_path / "WEB").mkdir()
    (tmp_path / "WEB" / "anno.json").write_text(json.dumps([bad]))
    res, text = _eval(tmp_path / "WEB", tmp_path / "run", "--benchmark", "proactivevideoqa")
    assert res.exit_code == 2 and "is not a [start, end] pair of seconds" in text


# -- saved runs and resumes -------------------------------------------------------------------------
def test_eval_report_refuses_a_trajectories_file_with_a_corrupted_middle_line(tmp_path):
    data, out = _bench(tmp_path / "bench", n=3), tmp_path / "run"
    res, text = _eval(data, out)
    assert res.exit_code == 0, text
    lines = (out / "trajectories.jsonl").read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # damage in the middle, not a crash's cut tail
    (out / "trajectories.jsonl").write_text("\n".join(lines) + "\n")
    res, text = _cli("eval", "report", out, "--timelines", "0")
    assert res.exit_code == 2 and "trajectories.jsonl:2: not valid JSON" in text


def test_a_cut_last_line_is_still_a_crash_tail_and_skipped(tmp_path):
    from evostreaming.utils.jsonl import read_jsonl

    (tmp_path / "t.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "ste')
    assert [r["id"] for r in read_jsonl(tmp_path / "t.jsonl")] == ["a", "b"]


def test_a_replaced_video_refuses_the_resume_and_a_corrected_videos_folder_retries(tmp_path):
    data, out = _bench(tmp_path / "bench", n=2), tmp_path / "run"
    moved = tmp_path / "elsewhere"
    shutil.copytree(data / "videos", moved / "videos")  # --videos is the folder the paths are relative to
    (data / "videos" / "c1.mp4").unlink()  # s1 fails: its video is missing
    res, text = _eval(data, out)
    assert res.exit_code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples_failed"] == 1
    # the same videos in another folder: the resume retries s1 and keeps s0
    res, text = _eval(data, out, "--videos", moved)
    assert res.exit_code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples_failed"] == 0 and "resuming: 1 samples finished" in text
    # a replaced video (other content, same name) is another job
    _clip(moved / "videos" / "c0.mp4", seconds=8, value=200)
    res, text = _eval(data, out, "--videos", moved)
    assert res.exit_code == 2 and "video of 1 finished sample(s) changed" in text and "s0" in text


# -- stream, connect, evolve: refused before any model loads -----------------------------------------
def test_stream_refuses_a_question_after_the_videos_end_before_loading(tmp_path):
    clip = _clip(tmp_path / "c.mp4", seconds=16)
    res, text = _cli("stream", "no-such-model-folder", clip, "--query", "count them", "--query-at", "500")
    assert res.exit_code == 2 and "--query-at 500 s is after the end of" in text and "16.0 s long" in text


@pytest.mark.parametrize("pixels", ["-5", "-1"])
def test_a_negative_pixel_budget_is_refused_before_loading(tmp_path, pixels):
    clip = _clip(tmp_path / "c.mp4")
    res, text = _cli("stream", "no-such-model-folder", clip, "--max-pixels", pixels)
    assert res.exit_code == 2 and "--max-pixels is a pixel budget per frame" in text and pixels in text
    res, text = _eval(_bench(tmp_path / "b", n=1), tmp_path / "run", "--max-pixels", pixels)
    assert res.exit_code == 2 and "--max-pixels is a pixel budget per frame" in text


def test_a_zero_pixel_budget_keeps_frames_as_they_are_in_stream_and_eval_alike(tmp_path):
    from PIL import Image

    from evostreaming.eval.config import EvalRunConfig
    from evostreaming.video.sources import fit_pixels

    big = Image.new("RGB", (1000, 800))
    assert fit_pixels(big, 0).size == (1000, 800) and fit_pixels(big, 1000).size != (1000, 800)
    assert EvalRunConfig(data=_bench(tmp_path / "b", n=1), baseline="oracle", max_pixels=0).max_pixels == 0


def test_stream_jsonl_under_a_file_is_refused_before_loading(tmp_path):
    clip = _clip(tmp_path / "c.mp4")
    (tmp_path / "afile").write_text("x")
    res, text = _cli("stream", "no-such-model-folder", clip, "--jsonl", tmp_path / "afile" / "steps.jsonl")
    assert res.exit_code == 2 and "afile is a file, not a folder" in text and "--jsonl" in text


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "https://host:443/v1/realtime"])
def test_connect_to_an_http_url_names_the_websocket_url_to_use(tmp_path, url):
    res, text = _cli("connect", url, _clip(tmp_path / "c.mp4"))
    expected = "wss://host:443/v1/realtime" if url.startswith("https") else "ws://127.0.0.1:8000/v1/realtime"
    assert res.exit_code == 2 and "not a WebSocket URL" in text and expected in text


def test_evolve_run_with_no_world_videos_says_so(tmp_path):
    args = ["evolve", "run", "--model", "pocket", "--world-seed", "0", "--n-videos", "0", "--output", tmp_path / "o"]
    res, text = _cli(*args)
    assert res.exit_code == 2 and "--n-videos is the number of ShapesWorld videos" in text
    assert "unreadable" not in text


# -- an adapter on the wrong tiny model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    """A LoRA adapter of tiny:qwen2_5_vl, with the base record `train lora` writes beside it."""
    from peft import LoraConfig, get_peft_model

    from evostreaming.models import load_model
    from evostreaming.models.loading import record_adapter_base

    folder = tmp_path_factory.mktemp("adapter")
    model = load_model("tiny:qwen2_5_vl", device="cpu").model
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(folder)
    record_adapter_base(folder, "tiny:qwen2_5_vl")
    return folder


@pytest.mark.parametrize("other", ["tiny:qwen2_vl", "tiny:llava"])
def test_an_adapter_of_another_tiny_model_is_refused_naming_its_model(tiny_adapter, other):
    from evostreaming.models import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match=r"trained on 'tiny:qwen2_5_vl'"):
        load_model(other, device="cpu", adapter_dir=str(tiny_adapter))
    assert load_model("tiny:qwen2_5_vl", device="cpu", adapter_dir=str(tiny_adapter)).adapter_dir


def test_an_adapter_without_a_base_record_that_does_not_cover_the_model_is_refused(tiny_adapter, tmp_path):
    """PEFT only warns when the adapter's weights miss modules it targets: the model would silently stay
    the base model there."""
    from evostreaming.models import ModelLoadError, load_model

    bare = tmp_path / "bare"
    shutil.copytree(tiny_adapter, bare)
    (bare / "base_weights.json").unlink()
    with pytest.raises(ModelLoadError, match=r"holds no weights for modules it targets in this model"):
        load_model("tiny:llava", device="cpu", adapter_dir=str(bare))


# -- a stalled OpenAI-compatible server -----------------------------------------------------------------
@pytest.fixture
def stalled_server():
    """A loopback server that accepts connections and never answers (a hung vLLM)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held, stop = [], threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_a_stalled_server_says_it_is_waiting_and_fails_within_the_bound(stalled_server):
    from evostreaming.utils.openai_client import ChatClient, RemoteError

    lines: list[str] = []
    client = ChatClient(stalled_server, "m", timeout_s=1.0, retries=0, notice_every_s=0.2, on_wait=lines.append)
    with pytest.raises(RemoteError, match=r"no reply within 1 s"):
        client.chat([{"role": "user", "content": "hi"}], max_tokens=1)
    assert lines and "waiting for" in lines[0] and "gives up after about 1 s" in lines[0]


def test_the_default_wait_is_bounded_and_the_spec_sets_it():
    from evostreaming.utils.openai_client import ChatClient
    from evostreaming.utils.openai_spec import SpecError, parse_spec

    assert ChatClient("http://127.0.0.1:9/v1", "m").bound_s <= 120  # was 4 x 120 s and 5 x 60 s
    spec = parse_spec("openai:http://h:1/v1,model=m,timeout=5,retries=1", flag="--judge")
    assert (spec.timeout_s, spec.retries) == (5.0, 1)
    for bad in ("timeout=0", "timeout=soon", "retries=-1"):
        with pytest.raises(SpecError, match="timeout=SECONDS is a number > 0"):
            parse_spec(f"openai:http://h:1/v1,model=m,{bad}", flag="--judge")


def test_a_stalled_judge_stops_the_run_within_its_bound(tmp_path, stalled_server):
    judge = f"openai:{stalled_server},model=j,timeout=1,retries=0"
    res, text = _eval(_bench(tmp_path / "b", n=1), tmp_path / "run", "--judge", judge)
    assert res.exit_code == 2 and "does not answer" in text and "no reply within 1 s" in text


# -- the realtime server's rate limit with jitter -----------------------------------------------------
def test_the_rate_limit_lets_a_client_paced_at_the_limit_through_jitter_and_stops_a_flood():
    from evostreaming.serve.worker import RateGate

    gate = RateGate(max_fps=4.0)  # one frame per 0.25 s
    # paced at the limit, with one frame delayed by the network and the next on time
    arrivals = [0.0, 0.25, 0.5, 0.82, 1.0, 1.25, 1.5]
    assert all(gate.admit(t) for t in arrivals)
    flood = RateGate(max_fps=4.0)
    admitted = [flood.admit(2.0 + 0.01 * k) for k in range(10)]
    assert sum(admitted) == 2  # the slack, then nothing faster than the limit


def test_a_stalled_realtime_server_says_it_is_waiting_and_fails_the_step_within_its_timeout():
    """A server that accepts the WebSocket and never opens a session (or never decides a frame)."""
    from websockets.sync.server import serve

    from evostreaming.eval.remote import RealtimeError, RealtimePolicy, RemoteSettings

    stop = threading.Event()
    with serve(lambda ws: stop.wait(30), "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"realtime:ws://127.0.0.1:{server.socket.getsockname()[1]}/v1/realtime,timeout=1"
        lines: list[str] = []
        policy = RealtimePolicy(
            url, RemoteSettings(system_prompt="s", marker="<silent>"), notice_every_s=0.25, on_wait=lines.append
        )
        assert policy.timeout_s == 1.0  # from the spec
        try:
            with pytest.raises(RealtimeError, match=r"no session for 1 s"):
                policy.reset(Sample.model_construct(fps=0.5))
        finally:
            stop.set()
            server.shutdown()
    assert lines and "waiting for ws://127.0.0.1" in lines[0] and "gives up after 1 s" in lines[0]


def test_a_setting_no_longer_in_the_identity_does_not_block_a_resume(tmp_path):
    """`--videos` left the eval identity (videos are fingerprinted per trajectory instead): a run started
    by the older version still resumes, and a real difference is still refused."""
    from evostreaming.utils.jobs import JobError, check_identity

    assert check_identity(tmp_path, "eval run", {"data": "d", "videos": "/old/place"}) is False
    assert check_identity(tmp_path, "eval run", {"data": "d"}) is True
    assert "videos" not in json.loads((tmp_path / "job.json").read_text())["identity"]
    (tmp_path / "trajectories.jsonl").write_text("{}\n")  # finished work a different job would mix with
    with pytest.raises(JobError, match=r"data: \"d\" -> \"e\""):
        check_identity(tmp_path, "eval run", {"data": "e"})


def test_a_job_that_stopped_before_any_work_does_not_block_the_corrected_rerun(tmp_path):
    """A misspelt --model fails after the job's door: the folder holds only job.json, so the re-run
    with the right settings starts there instead of being refused as "a different job"."""
    bench, out = _bench(tmp_path / "bench"), tmp_path / "out"
    res = runner.invoke(app, ["eval", "run", "--data", str(bench), "--output", str(out), "--model", "tiyn:x"])
    assert res.exit_code == 2 and "is not a model scheme" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["eval", "run", "--data", str(bench), "--output", str(out), "--baseline", "always-silent"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "job.json").read_text())["identity"]["baseline"] == "always-silent"
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "command, flag, value",
    [
        ("engine", "--sessions", "a,b"),
        ("engine", "--sessions", "1,,2"),
        ("engine", "--sessions", "0"),
        ("engine", "--modes", "fast"),
        ("engine", "--frames", "0"),
        ("engine", "--window", "-1"),
        ("engine", "--max-new-tokens", "-3"),
        ("engine", "--max-batch-tokens", "0"),
        ("streaming", "--frames", "0"),
        ("streaming", "--window", "0"),
        ("streaming", "--naive-max", "-1"),
        ("load", "--levels", "a"),
    ],
)
def test_a_bad_bench_flag_is_named_before_any_model_loads(tmp_path, command, flag, value):
    # the model spec cannot load: an error about it would mean the flag was checked too late
    res = runner.invoke(app, ["bench", command, "--model", "nope:x", flag, value, "--json", str(tmp_path / "b.json")])
    assert res.exit_code == 2, res.output
    assert flag in res.output and "nope:x" not in res.output, res.output
    assert not (tmp_path / "b.json").exists()


def test_a_misspelt_model_scheme_is_named_as_such_not_as_a_network_problem(tmp_path):
    res = runner.invoke(app, ["bench", "streaming", "--model", "tiyn:qwen2_vl", "--json", str(tmp_path / "b.json")])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert "'tiyn:' is not a model scheme" in out and "tiny:<family>" in out, out
    assert "reachable hub id" not in out


@pytest.mark.parametrize(
    "args, names",
    [
        (["--generation-batch-size", "0"], "--generation-batch-size must be >= 1"),
        (["--server-model", "evo"], "--server-model names a model on a --server"),
    ],
)
def test_evolve_run_names_a_bad_generation_flag_before_loading(tmp_path, args, names):
    cmd = ["evolve", "run", "--model", "tiyn:x", "--world-seed", "1", "--n-videos", "2", "--output", str(tmp_path)]
    res = runner.invoke(app, cmd + args)
    assert res.exit_code == 2, res.output
    assert names in " ".join(res.output.split()) and "tiyn" not in res.output, res.output


def test_timelines_below_minus_one_is_refused(tmp_path):
    res = runner.invoke(app, ["eval", "report", str(tmp_path), "--timelines", "-5"])
    assert res.exit_code == 2 and "--timelines" in res.output, res.output


@pytest.mark.parametrize(
    "source, says",
    [
        ("97", "no camera /dev/video97"),
        ("rtsp://127.0.0.1:{port}/cam", "cannot reach"),
        ("rtsp://127.0.0.1:99999/cam", "Port out of range"),
    ],
)
def test_stream_from_a_missing_camera_or_a_dead_host_fails_before_loading(tmp_path, source, says):
    source = source.format(port=free_port())
    res = runner.invoke(app, ["stream", "tiyn:x", source])
    assert res.exit_code == 2, res.output
    assert says in " ".join(res.output.split()) and "tiyn" not in res.output, res.output


def test_a_live_url_whose_host_answers_passes_the_probe():
    from evostreaming.video.sources import LiveSource

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        LiveSource(f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam").probe()  # no error


def _rollout_row(**changes):
    steps = [{"step": 0, "user_text": "is the [red] square there?", "reply": "<silent>"}]
    steps.append({"step": 1, "user_text": None, "reply": "yes, [bold]now[/bold]"})
    return {"video": "world:1", "question": "is the [red] square there?", "steps": steps, **changes}


@pytest.mark.parametrize(
    "lines, says",
    [
        ([], "holds no trajectories"),
        (["{not json", json.dumps(_rollout_row())], ":1: not valid JSON"),
        ([json.dumps({"a": 1})], "trajectory 0 is not a trajectory row"),
    ],
)
def test_evolve_show_names_an_empty_damaged_or_foreign_file(tmp_path, lines, says):
    (tmp_path / "rollouts.jsonl").write_text("".join(line + "\n" for line in lines))
    res = runner.invoke(app, ["evolve", "show", str(tmp_path)])
    assert res.exit_code == 2 and says in " ".join(res.output.split()), res.output


def test_evolve_show_prints_the_words_as_written(tmp_path):
    (tmp_path / "rollouts.jsonl").write_text(json.dumps(_rollout_row()) + "\n")
    res = runner.invoke(app, ["evolve", "show", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "is the [red] square there?" in res.output and "yes, [bold]now[/bold]" in res.output


def test_train_lora_on_a_round_folder_names_its_training_file(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    args = ["train", "lora", "--model", "tiyn:x", "--data", str(tmp_path), "--output", str(tmp_path / "o")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and f"use {tmp_path / 'train.jsonl'}" in " ".join(res.output.split()), res.output


@pytest.mark.parametrize(
    "flag, value",
    [("--steps", "0"), ("--batch-size", "0"), ("--lr", "0"), ("--lr", "nan"), ("--perception-steps", "-1")],
)
def test_train_pocket_refuses_settings_that_cannot_train_before_any_work(tmp_path, flag, value):
    args = ["world", "train-pocket", "--output", str(tmp_path / "p"), "--vision-steps", "0", flag, value]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and f"{flag} must be" in res.output, res.output
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


@pytest.mark.parametrize(
    "args, says",
    [
        (["--fps", "0"], "--fps must be a positive number"),
        (["--max-frames", "-2"], "--max-frames is a number of frames >= 1"),
        (["--question", "hi", "--at", "-3"], "--at takes stream times in seconds >= 0"),
        ([], "is `evostreaming serve` running there?"),
    ],
)
def test_connect_checks_its_flags_before_it_connects(tmp_path, args, says):
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"  # nothing listens: a flag error must come first
    res = runner.invoke(app, ["connect", url, str(_clip(tmp_path / "c.mp4", seconds=2)), *args])
    assert res.exit_code == 2 and says in " ".join(res.output.split()), res.output


@pytest.mark.parametrize("make, says", [(None, "no such folder"), ("empty", "no adapter_config.json there")])
def test_a_missing_or_empty_adapter_folder_is_refused_before_the_model_loads(tmp_path, make, says):
    adapter = tmp_path / "adapter"
    if make:
        adapter.mkdir()
    clip = _clip(tmp_path / "c.mp4", seconds=2)
    res = runner.invoke(app, ["stream", "tiyn:x", str(clip), "--adapter", str(adapter)])
    assert res.exit_code == 2 and says in " ".join(res.output.split()) and "tiyn" not in res.output, res.output


def test_stream_names_max_text_turns_by_its_flag(tmp_path):
    res = runner.invoke(app, ["stream", "tiyn:x", str(_clip(tmp_path / "c.mp4", seconds=2)), "--max-text-turns", "-1"])
    assert res.exit_code == 2 and "--max-text-turns must be >= 0" in res.output, res.output


def test_serve_on_a_port_in_use_says_so_before_the_model_loads():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        res = runner.invoke(app, ["serve", "tiyn:x", "--port", str(held.getsockname()[1])])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "Address already in use" in out and "choose another --port" in out, out


def test_serve_on_an_address_of_another_machine_names_the_host():
    res = runner.invoke(app, ["serve", "tiyn:x", "--host", "nosuchhost.invalid", "--api-key", "k"])
    assert res.exit_code == 2 and "--host nosuchhost.invalid" in " ".join(res.output.split()), res.output


@pytest.mark.parametrize("command", [["demo"], ["eval", "run", "--baseline", "always-silent", "--data", "BENCH"]])
def test_an_output_that_is_a_file_or_cannot_be_made_is_named(tmp_path, command):
    if "BENCH" in command:
        command = [str(_bench(tmp_path / "bench", n=1)) if a == "BENCH" else a for a in command]
    (tmp_path / "a-file").write_text("x")
    res = runner.invoke(app, [*command, "--output", str(tmp_path / "a-file")])
    assert res.exit_code == 2 and "is a file, not a folder" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, [*command, "--output", "/proc/no/such"])
    assert res.exit_code == 2 and "cannot write there" in res.output and "--output" in res.output, res.output


@pytest.mark.parametrize("command", [["bench", "streaming"], ["bench", "engine"], ["bench", "load"], ["models"]])
def test_a_results_file_that_cannot_be_written_is_refused_before_measuring(tmp_path, command):
    (tmp_path / "a-file").write_text("x")
    for where, says in ((tmp_path, "is a folder"), (tmp_path / "a-file" / "r.json", "is a file, not a folder")):
        res = runner.invoke(app, [*command, "--json", str(where)])
        flat = " ".join(res.output.replace("│", " ").split())  # typer's error box, unwrapped
        assert res.exit_code == 2 and says in flat and "--json" in flat, res.output


def test_make_bench_refuses_no_streams_and_an_output_that_is_a_file(tmp_path):
    res = runner.invoke(app, ["world", "make-bench", "--output", str(tmp_path / "b"), "--n", "0"])
    assert res.exit_code == 2 and "--n" in res.output and not (tmp_path / "b").exists(), res.output
    (tmp_path / "a-file").write_text("x")
    res = runner.invoke(app, ["world", "make-bench", "--output", str(tmp_path / "a-file"), "--n", "1"])
    assert res.exit_code == 2 and "is a file, not a folder" in " ".join(res.output.split()), res.output
