"""Policies driven by the RealStreamEval protocol, one step at a time.

A policy sees, at step k, only the current frame, the user text that arrived since step k-1,
and whatever it chose to remember itself. Baselines: always-silent, always-respond, and an
oracle that answers the gold text at the gold times (an upper bound that checks the scorer).
"""

from __future__ import annotations

from dataclasses import dataclass

from evostreaming.eval.schema import Sample
from evostreaming.eval.scoring import step_of
from evostreaming.utils.registry import Registry


@dataclass
class PolicyStep:
    action: str  # "silent" | "respond"
    text: str = ""
    tokens: int = 0


BASELINES: Registry[type[Policy]] = Registry("baseline")


class Policy:
    name = "policy"
    needs_frames = True

    def reset(self, sample: Sample) -> None:
        """A new stream begins."""

    def step(self, k: int, time: float, frame, user_text: str | None) -> PolicyStep:
        raise NotImplementedError


@BASELINES.register("always-silent")
class AlwaysSilent(Policy):
    name = "always-silent"
    needs_frames = False

    def step(self, k, time, frame, user_text):
        return PolicyStep("silent")


@BASELINES.register("always-respond")
class AlwaysRespond(Policy):
    name = "always-respond"
    needs_frames = False

    def __init__(self, text: str = "I see the scene; nothing new."):
        self.text = text

    def step(self, k, time, frame, user_text):
        return PolicyStep("respond", self.text, len(self.text.split()))


@BASELINES.register("oracle")
class Oracle(Policy):
    """Answers each gold answer's text exactly at its due step. Reads the gold: a baseline only."""

    name = "oracle"
    needs_frames = False

    def reset(self, sample: Sample) -> None:
        self.due: dict[int, str] = {}
        for gold in sample.answers:
            self.due.setdefault(step_of(gold.time, sample.fps), gold.answer)

    def step(self, k, time, frame, user_text):
        if k in self.due:
            return PolicyStep("respond", self.due[k], len(self.due[k].split()))
        return PolicyStep("silent")


class SessionPolicy(Policy):
    """A VideoLLM through ``StreamingSession`` (a fresh session per sample)."""

    needs_frames = True

    def __init__(self, loaded, config_factory):
        self.loaded = loaded
        self.config_factory = config_factory
        self.name = loaded.spec
        self.session = None

    def reset(self, sample: Sample) -> None:
        from evostreaming.stream.session import StreamingSession

        self.session = StreamingSession(
            self.loaded.model, self.loaded.processor, self.loaded.adapter, self.config_factory(sample)
        )

    def step(self, k, time, frame, user_text):
        res = self.session.step(frame, time, user_text)
        return PolicyStep(res.action, res.text, res.n_tokens)


def make_baseline(name: str) -> Policy:
    """A registered baseline policy by name (``eval run --baseline NAME``)."""
    return BASELINES.get(name)()


class OpenAIPolicy(Policy):
    """A model behind an OpenAI-compatible chat server (vLLM, SGLang, ``evostreaming serve``).

    At each step one request carries the whole causal history: the system prompt, every earlier user
    turn (its frame as a PNG data URL, and its text) and the model's own earlier replies, the silence
    marker included. The prefix is never edited, so a server's prefix cache stays valid and each step
    pays only for the new frame. The step is silent when the first generated token is the marker
    (from the returned log-probabilities) or, without them, when the reply starts with the marker.
    """

    needs_frames = True

    def __init__(self, spec: str, *, system_prompt: str, marker: str, max_new_tokens: int = 48):
        from evostreaming.utils.openai_client import ChatClient

        url, _, rest = spec.partition(",")
        opts = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
        if not url.startswith(("http://", "https://")) or "model" not in opts:
            example = "openai:http://127.0.0.1:8000/v1,model=pocket"
            raise ValueError(f"--policy openai:{spec}: use openai:URL,model=NAME (e.g. {example})")
        self.client = ChatClient(url, opts["model"], api_key=opts.get("api_key"))
        self.name = f"openai:{opts['model']}"
        self.system = system_prompt.replace("{marker}", marker)
        self.marker, self.max_new_tokens = marker, max_new_tokens

    def reset(self, sample: Sample) -> None:
        self.messages: list[dict] = [{"role": "system", "content": self.system}]

    def step(self, k, time, frame, user_text):
        from evostreaming.utils.openai_client import image_data_url

        content = [{"type": "image_url", "image_url": {"url": image_data_url(frame)}}]
        if user_text:
            content.append({"type": "text", "text": user_text})
        self.messages.append({"role": "user", "content": content})
        text, first = self.client.complete(
            self.messages, max_tokens=self.max_new_tokens, temperature=0.0, logprobs=True, top_logprobs=5
        )
        # a one-token marker: the top first token decides; otherwise (or without log-probabilities) the text
        silent = text.strip().startswith(self.marker) or bool(first and first[0]["token"] == self.marker)
        reply = self.marker if silent else text
        self.messages.append({"role": "assistant", "content": reply})
        return PolicyStep("silent") if silent else PolicyStep("respond", text, len(text.split()))
