"""A stateless ``POST /v1/chat/completions`` on the served model (OpenAI's shape: text and
``image_url`` data-URL content, ``max_tokens``, ``logprobs`` / ``top_logprobs``, ``stream``): what the
``openai:`` evaluation policy, the LLM judge and ``evolve run --server`` speak, so small labs need no
vLLM and the tests have a real server. Greedy decoding; each request renders the whole conversation
with the model's own chat template and frames at the session's visual-token budget.

Requests are validated by pydantic models (``ChatRequest``): a field of the wrong type or out of range
is an HTTP 400 naming it, never a 500."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from typing import Annotated, Literal

import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evostreaming.serve.protocol import ProtocolError

VISUAL_TOKENS = 128  # as a streaming session encodes frames


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    model_config = ConfigDict(strict=True, extra="ignore")  # "detail" and the like
    url: str


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


class ChatMessage(_Strict):
    model_config = ConfigDict(strict=True, extra="ignore")  # "name" and the like
    role: Literal["system", "user", "assistant"]
    content: str | list[Annotated[TextPart | ImagePart, Field(discriminator="type")]]


class ChatRequest(_Strict):
    """The fields this endpoint reads; others an OpenAI client sends (temperature, seed, user) are
    ignored: decoding is greedy."""

    model_config = ConfigDict(strict=True, extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    n: int = Field(1, ge=1, le=1, description="one completion per request (greedy: n copies would be equal)")
    stream: bool = False

    @property
    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 64


def parse_request(body) -> ChatRequest:
    """The request, or ``ProtocolError`` naming the first bad field."""
    if not isinstance(body, dict):
        raise ProtocolError("bad_request", "the body is a JSON object (OpenAI's chat completion request)")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        # of a union's alternatives, the error that got furthest names the field the client meant
        e = max(exc.errors(), key=lambda err: len(err["loc"]))
        parts = [str(x) for x in e["loc"] if not (isinstance(x, str) and ("[" in x or x in ("str", "int")))]
        where = ".".join(dict.fromkeys(parts)) or "body"  # a discriminated union repeats its tag
        raise ProtocolError("bad_request", f"{where}: {e['msg']}") from exc


def _image(url: str) -> Image.Image:
    if not url.startswith("data:"):
        raise ProtocolError("bad_image", "image_url must be a data: URL (the server fetches nothing)")
    try:
        return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    except (ValueError, OSError) as exc:
        raise ProtocolError("bad_image", f"an image_url that is not an image ({exc})") from exc


def _messages(req: ChatRequest) -> tuple[list[dict], list[Image.Image]]:
    out, images = [], []
    for m in req.messages:
        if isinstance(m.content, str):
            parts = [{"type": "text", "text": m.content}]
        else:
            parts = []
            for p in m.content:
                if isinstance(p, ImagePart):
                    images.append(_image(p.image_url.url))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": p.text})
        out.append({"role": m.role, "content": parts})
    return out, images


def _inputs(loaded, req: ChatRequest) -> dict:
    messages, images = _messages(req)
    proc, adapter, model = loaded.processor, loaded.adapter, loaded.model
    prompt = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    kwargs = {**adapter.processor_kwargs(), **(adapter.frame_budget(proc, VISUAL_TOKENS) if images else {})}
    enc = proc(text=[prompt], images=[images] if images else None, return_tensors="pt", **kwargs)
    device = model.get_input_embeddings().weight.device
    return {k: v.to(device) for k, v in enc.items()}


def _end_ids(model) -> set[int]:
    ends = model.generation_config.eos_token_id
    return set(ends if isinstance(ends, list) else [] if ends is None else [ends])


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def stream_chat_completion(loaded, req: ChatRequest, model_name: str, model_lock: threading.Lock):
    """Server-sent events as OpenAI's clients read them: a role chunk, one chunk per generated token's
    text, a final chunk with ``finish_reason`` and ``usage``, then ``data: [DONE]``. A generator of SSE
    lines (run it off the event loop)."""
    enc = _inputs(loaded, req)
    model, tok = loaded.model, loaded.processor.tokenizer
    streamer = _TokenStreamer(tok)
    result: dict = {}

    def generate():
        try:
            with model_lock, torch.no_grad():
                result["out"] = model.generate(**enc, max_new_tokens=req.limit, do_sample=False, streamer=streamer)
        except Exception as exc:  # surfaced in the stream, not lost in a thread
            result["error"] = exc
            streamer.end()

    base = {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = model_name

    def chunk(delta: dict, finish=None, **extra) -> str:
        data = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(data)}\n\n"

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    yield chunk({"role": "assistant", "content": ""})
    for text in streamer:
        if text:
            yield chunk({"content": text})
    thread.join()
    if "error" in result:
        yield f"data: {json.dumps({'error': {'message': str(result['error']), 'type': 'server_error'}})}\n\n"
        return
    new = result["out"][0, enc["input_ids"].shape[1] :]
    stopped = new.shape[0] > 0 and int(new[-1]) in _end_ids(model)
    finish = "stop" if stopped or new.shape[0] < req.limit else "length"
    yield chunk({}, finish, usage=_usage(int(enc["input_ids"].shape[1]), int(new.shape[0])))
    yield "data: [DONE]\n\n"


class _TokenStreamer:
    """A ``generate(streamer=...)`` that hands out each new token's text as soon as it decodes whole
    (transformers' ``TextIteratorStreamer`` waits for a word's end; OpenAI streams token by token).
    The prompt's ids come first and are skipped; text ending in an incomplete UTF-8 sequence waits."""

    def __init__(self, tokenizer):
        import queue

        self.tok, self.queue = tokenizer, queue.SimpleQueue()
        self.ids: list[int] | None = None
        self.sent = ""

    def put(self, value: torch.Tensor) -> None:
        if self.ids is None:  # the prompt
            self.ids = []
            return
        self.ids += value.reshape(-1).tolist()
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.sent) and text.startswith(self.sent) and not text.endswith("\ufffd"):
            self.queue.put(text[len(self.sent) :])
            self.sent = text

    def end(self) -> None:
        text = self.tok.decode(self.ids or [], skip_special_tokens=True)
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.queue.put(text[len(self.sent) :])
        self.queue.put(None)

    def __iter__(self):
        while (piece := self.queue.get()) is not None:
            yield piece


@torch.no_grad()
def chat_completion(loaded, req: ChatRequest, model_name: str) -> dict:
    max_tokens = req.limit
    top = (req.top_logprobs or 0) if req.logprobs else 0
    proc, model = loaded.processor, loaded.model
    enc = _inputs(loaded, req)
    out = model.generate(
        **enc, max_new_tokens=max_tokens, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    new = out.sequences[0, enc["input_ids"].shape[1] :]
    stopped = new.shape[0] > 0 and int(new[-1]) in _end_ids(model)  # else it ran to max_tokens: "length"
    # not stripped (as vLLM): a client that sends the reply back re-tokenizes what the model generated,
    # e.g. a leading " right" stays one token instead of becoming "ri" + "ght"
    text = proc.tokenizer.decode(new, skip_special_tokens=True)
    logprobs = None
    if top and out.scores:
        lp = torch.log_softmax(out.scores[0][0].float(), dim=-1)
        values, ids = lp.topk(min(top, lp.shape[-1]))
        tokens = proc.tokenizer.convert_ids_to_tokens(ids.tolist())
        alts = [{"token": t, "logprob": float(v), "bytes": None} for t, v in zip(tokens, values.tolist(), strict=True)]
        logprobs = {"content": [{**alts[0], "top_logprobs": alts}]}
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": "stop" if stopped or new.shape[0] < max_tokens else "length",
            }
        ],
        "usage": _usage(int(enc["input_ids"].shape[1]), int(new.shape[0])),
    }
