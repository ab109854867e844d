"""Generation backends for the self-evolution stages: one request = frames + a text prompt.

* ``LocalBackend``: a transformers model, batched greedy (or sampled) generation.
* ``OpenAIBackend``: an OpenAI-compatible server (vLLM, SGLang) with images as base64 data URLs
  and bounded concurrency, so large pools spread over the server's GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from evostreaming.utils.errors import UserError
from evostreaming.utils.openai_client import ChatClient, RemoteError, image_data_url


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


class BackendError(UserError, RuntimeError):
    pass


class OpenAIBackend:
    """Chat completions against ``base_url`` (e.g. ``http://localhost:8000/v1``) for model ``model``,
    through the shared client (``utils.openai_client``: timeouts, retries with backoff, bounded
    concurrency).

    The request carries the same system prompt and user turn (images first, then the text) as
    ``LocalBackend`` builds, so a served model sees what the local one would. Frames travel as PNG
    (lossless).
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
    ):
        self.client = ChatClient(
            base_url, model, api_key=api_key, timeout_s=timeout_s, retries=retries, concurrency=concurrency
        )
        self.system = system
        self.name = model

    def _messages(self, req: Request) -> list[dict]:
        content = [{"type": "image_url", "image_url": {"url": image_data_url(f)}} for f in req.frames]
        content.append({"type": "text", "text": req.prompt})
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": content}]

    def generate(
        self, requests: list[Request], *, max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        params = [
            {"max_tokens": max_new_tokens, "temperature": temperature, "seed": seed + i} for i in range(len(requests))
        ]
        try:
            outs = self.client.chat_many([self._messages(r) for r in requests], params)
        except RemoteError as exc:
            raise BackendError(str(exc)) from exc
        return [o.strip() for o in outs]
