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
    choices: list[str] | None = None  # a closed set: a local model returns the likeliest one


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
        # Closed-set requests decode in their own batches (constrained to their choices), then every
        # answer goes back to its request's place.
        groups = [
            [i for i, r in enumerate(requests) if not r.choices],
            [i for i, r in enumerate(requests) if r.choices],
        ]
        outs: list[str] = [""] * len(requests)
        for group in groups:
            for i in range(0, len(group), self.batch_size):
                part = group[i : i + self.batch_size]
                texts = self._batch([requests[j] for j in part], max_new_tokens, temperature, seed + i)
                for j, text in zip(part, texts, strict=True):
                    outs[j] = text
        return outs

    def _batch(self, chunk: list[Request], max_new_tokens: int, temperature: float, seed: int) -> list[str]:
        tok = self.processor.tokenizer
        texts = [
            self.processor.apply_chat_template(self._messages(r), tokenize=False, add_generation_prompt=True)
            for r in chunk
        ]
        # One list of frames per prompt: processors that check counts per sample (SmolVLM) need it.
        images = [[_pil(f) for f in r.frames] for r in chunk]
        side, tok.padding_side = tok.padding_side, "left"
        try:
            enc = self.processor(text=texts, images=images if any(images) else None, return_tensors="pt", padding=True)
        finally:
            tok.padding_side = side
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        kwargs = {"do_sample": False}
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
        start = enc["input_ids"].shape[1]
        if chunk[0].choices:
            choices = [self._choice_ids(r, p) for r, p in zip(chunk, texts, strict=True)]
            kwargs["prefix_allowed_tokens_fn"] = self._allowed(choices, start)
            max_new_tokens = max(len(c) for row in choices for c in row) + 1
        gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, **kwargs)
        return [t.strip() for t in tok.batch_decode(gen[:, start:], skip_special_tokens=True)]

    def _choice_ids(self, req: Request, prompt: str) -> list[list[int]]:
        """Each choice's tokens as they are cut after this prompt (a merge across the boundary counts)."""
        tok = self.processor.tokenizer
        base = tok(prompt, add_special_tokens=False)["input_ids"]
        return [tok(prompt + c, add_special_tokens=False)["input_ids"][len(base) :] for c in req.choices]

    def _allowed(self, choices: list[list[list[int]]], start: int):
        """``generate``'s constraint: at each step, only a token that continues one of the row's
        choices (token ids per choice), or the end of turn once a choice is complete (greedy over
        the choices' prefix tree)."""
        tok = self.processor.tokenizer
        stop = [t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None]

        def allowed(row: int, ids: torch.Tensor) -> list[int]:
            done = ids[start:].tolist()
            nxt = {c[len(done)] for c in choices[row] if len(c) > len(done) and c[: len(done)] == done}
            if any(c == done for c in choices[row]):
                nxt.update(stop)
            return sorted(nxt) or stop

        return allowed


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
