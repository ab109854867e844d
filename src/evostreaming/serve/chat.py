"""A stateless ``POST /v1/chat/completions`` on the served model (OpenAI's shape: text and
``image_url`` data-URL content, ``max_tokens``, ``logprobs`` / ``top_logprobs``): what the ``openai:``
evaluation policy, the LLM judge and ``evolve run --server`` speak, so small labs need no vLLM and
the tests have a real server. Greedy decoding; each request renders the whole conversation with the
model's own chat template and frames at the session's visual-token budget."""

from __future__ import annotations

import base64
import io
import time
import uuid

import torch
from PIL import Image

from evostreaming.serve.protocol import ProtocolError

VISUAL_TOKENS = 128  # as a streaming session encodes frames


def _image(url: str) -> Image.Image:
    if not url.startswith("data:"):
        raise ProtocolError("bad_image", "image_url must be a data: URL (the server fetches nothing)")
    try:
        return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    except (ValueError, OSError) as exc:
        raise ProtocolError("bad_image", f"an image_url that is not an image ({exc})") from exc


def _messages(body: dict) -> tuple[list[dict], list[Image.Image]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ProtocolError("bad_request", "'messages' must be a non-empty list")
    out, images = [], []
    for m in msgs:
        content = m.get("content")
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "image_url":
                    images.append(_image((p.get("image_url") or {}).get("url", "")))
                    parts.append({"type": "image"})
                elif p.get("type") == "text":
                    parts.append({"type": "text", "text": p.get("text", "")})
        else:
            raise ProtocolError("bad_request", "a message's content is a string or a list of parts")
        out.append({"role": m.get("role", "user"), "content": parts})
    return out, images


@torch.no_grad()
def chat_completion(loaded, body: dict, model_name: str) -> dict:
    messages, images = _messages(body)
    max_tokens = int(body.get("max_tokens") or 64)
    top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
    proc, adapter, model = loaded.processor, loaded.adapter, loaded.model
    prompt = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    kwargs = {**adapter.processor_kwargs(), **(adapter.frame_budget(proc, VISUAL_TOKENS) if images else {})}
    enc = proc(text=[prompt], images=[images] if images else None, return_tensors="pt", **kwargs)
    device = model.get_input_embeddings().weight.device
    enc = {k: v.to(device) for k, v in enc.items()}
    out = model.generate(
        **enc, max_new_tokens=max_tokens, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    new = out.sequences[0, enc["input_ids"].shape[1] :]
    ends = model.generation_config.eos_token_id
    ends = set(ends if isinstance(ends, list) else [] if ends is None else [ends])
    stopped = new.shape[0] > 0 and int(new[-1]) in ends  # else it ran to max_tokens: "length"
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
        "usage": {"prompt_tokens": int(enc["input_ids"].shape[1]), "completion_tokens": int(new.shape[0])},
    }
