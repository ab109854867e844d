"""Policies driven by the RealStreamEval protocol, one step at a time.

A policy sees, at step k, only the current frame, the user text that arrived since step k-1,
and whatever it chose to remember itself. Baselines: always-silent, always-respond, and an
oracle that answers the gold text at the gold times (an upper bound that checks the scorer).
"""

from __future__ import annotations

import copy
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

    def check(self) -> None:
        """Before any stream: fail now, with the cause, if the policy cannot run (a server is down)."""

    def end(self) -> None:
        """The stream is over (after its last step, or its failure): release what it held."""

    def fork(self) -> Policy:
        """A copy for another stream run at the same time (``eval run --concurrency``)."""
        return copy.copy(self)


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
    """A VideoLLM through ``StreamingSession`` (a fresh session per sample). With ``engine`` (a
    ``stream.engine.EngineThread``), its forks' sessions step together in packed forwards
    (``eval run --batch-streams N``); the results are those of stepping each alone."""

    needs_frames = True

    def __init__(self, loaded, config_factory, engine=None):
        self.loaded = loaded
        self.config_factory = config_factory
        self.name = loaded.spec
        self.engine = engine
        self.session = None

    def reset(self, sample: Sample) -> None:
        from evostreaming.stream.session import StreamingSession

        self.session = StreamingSession(
            self.loaded.model, self.loaded.processor, self.loaded.adapter, self.config_factory(sample)
        )
        if self.engine is not None:
            self.engine.attach(self.session)

    def step(self, k, time, frame, user_text):
        if self.engine is not None:
            res = self.engine.step(self.session, frame, time, user_text)
        else:
            res = self.session.step(frame, time, user_text)
        return PolicyStep(res.action, res.text, res.n_tokens)

    def end(self) -> None:
        if self.engine is not None and self.session is not None:
            self.engine.release(self.session)
        self.session = None


def make_baseline(name: str) -> Policy:
    """A registered baseline policy by name (``eval run --baseline NAME``)."""
    return BASELINES.get(name)()
