"""Generation backends for the self-evolution stages: one request = frames + a text prompt.

* ``LocalBackend``: a transformers model, batched greedy (or sampled) generation.
* ``OpenAIBackend``: an OpenAI-compatible server (vLLM, SGLang) with images as base64 data URLs
  and bounded concurrency, so large pools spread over the server's GPUs.
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass
class Request:
    frames: list  # PIL images or uint8 arrays
    prompt: str


def _pil(frame) -> Image.Image:
    return frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, np.uint8))


class LocalBackend:
    def __init__(self, model, processor, *, batch_size: int = 16, system: str | None = "You are a helpful assistant."):
        self.model, self.processor = model, processor
        self.batch_size = batch_size
        self.system = system
        self.name = getattr(model.config, "_name_or_path", "") or model.config.model_type

    def _messages(self, req: Request) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        content = [{"type": "image"} for _ in req.frames] + [{"type": "text", "text": req.prompt}]
        return msgs + [{"role": "user", "content": content}]

    @torch.no_grad()
    def generate(
        self, requests: list[Request], *, max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        tok = self.processor.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        outs: list[str] = []
        try:
            for i in range(0, len(requests), self.batch_size):
                chunk = requests[i : i + self.batch_size]
                texts = [
                    self.processor.apply_chat_template(self._messages(r), tokenize=False, add_generation_prompt=True)
                    for r in chunk
                ]
                images = [_pil(f) for r in chunk for f in r.frames]
                enc = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
                enc = {k: v.to(self.model.device) for k, v in enc.items()}
                kwargs = {"do_sample": False}
                if temperature > 0:
                    torch.manual_seed(seed + i)
                    kwargs = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
                gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, **kwargs)
                outs += [
                    t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                ]
        finally:
            tok.padding_side = side
        return outs


class BackendError(RuntimeError):
    pass


class OpenAIBackend:
    """Chat completions against ``base_url`` (e.g. ``http://localhost:8000/v1``) for model ``model``.

    The request carries the same system prompt and user turn (images first, then the text) as
    ``LocalBackend`` builds, so a served model sees what the local one would. Frames travel as PNG
    (lossless). Transient failures (connection errors, 429, 5xx) are retried with backoff.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        system: str | None = "You are a helpful assistant.",
        retries: int = 3,
        backoff_s: float = 1.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.system, self.retries, self.backoff_s = system, retries, backoff_s
        self.name = model

    @staticmethod
    def _data_url(frame) -> str:
        buf = io.BytesIO()
        _pil(frame).save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    def _one(self, req: Request, max_new_tokens: int, temperature: float, seed: int) -> str:
        content = [{"type": "image_url", "image_url": {"url": self._data_url(f)}} for f in req.frames]
        content.append({"type": "text", "text": req.prompt})
        messages = [{"role": "system", "content": self.system}] if self.system else []
        body = {
            "model": self.model,
            "messages": messages + [{"role": "user", "content": content}],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            http = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
            try:
                with urllib.request.urlopen(http, timeout=self.timeout_s) as resp:
                    return (json.loads(resp.read())["choices"][0]["message"]["content"] or "").strip()
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code != 429 and e.code < 500:  # a bad request will not get better
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = str(getattr(e, "reason", e))
        raise BackendError(
            f"{url}: request for model {self.model!r} failed after {attempt + 1} attempt(s) ({last}); "
            "check that the server is up and serves this model name (GET /v1/models)"
        )

    def generate(
        self, requests: list[Request], *, max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._one, r, max_new_tokens, temperature, seed + i) for i, r in enumerate(requests)]
            return [f.result() for f in futures]
