"""The LLM judge: any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted APIs) through the shared
client (``utils.openai_client``: timeouts, retries with backoff), with an on-disk cache keyed by the
input hash. A failure returns None: the protocol records it and reports it; it is never scored as 0
silently."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from evostreaming.eval.judges.base import JUDGES, Judge
from evostreaming.eval.judges.rule import RuleJudge
from evostreaming.eval.schema import GoldAnswer
from evostreaming.utils.errors import UserError
from evostreaming.utils.openai_client import ChatClient, RemoteError
from evostreaming.utils.openai_spec import parse_spec

JUDGE_PROMPT = """You grade answers from a video assistant.
Question context: {question}
Reference answer: {gold}
Assistant's answer: {response}

Does the assistant's answer convey the same information as the reference answer?
Reply with only a JSON object: {{"score": S}} where S is 1 for correct, 0 for wrong, or a value
in between for partially correct."""


class JudgeError(RuntimeError):
    pass


class JudgeUnavailable(UserError, RuntimeError):
    """The judge's server is down or refuses: the scoring stops with the cause (never scores it as 0)."""


class OpenAIJudge(Judge):
    """LLM judge over an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        cache_dir: str | Path | None = None,
        retries: int | None = None,  # None: the client's defaults (utils.openai_client)
        timeout_s: float | None = None,
        question: str = "",
        max_consecutive_failures: int = 5,
    ):
        bounds = {k: v for k, v in (("timeout_s", timeout_s), ("retries", retries)) if v is not None}
        self.client = ChatClient(base_url, model, api_key=api_key, **bounds)
        self.base_url, self.model = self.client.base_url, model
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.question = question
        self.failures: list[str] = []
        self.max_consecutive_failures = max_consecutive_failures
        self._consecutive = 0

    def check(self) -> None:
        """One one-token request, before any work: a wrong URL, model name or key stops the run now."""
        try:
            self.client.chat([{"role": "user", "content": "Reply with 1."}], max_tokens=1, temperature=0)
        except RemoteError as exc:
            raise JudgeUnavailable(f"judge openai:{self.base_url},model={self.model} does not answer: {exc}") from None

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps([self.model, prompt]).encode()).hexdigest()

    def _request(self, prompt: str) -> float:
        content = self.client.chat([{"role": "user", "content": prompt}], temperature=0, max_tokens=20)
        m = re.search(r'"score"\s*:\s*([0-9.]+)', content) or re.search(r"\b([01](?:\.\d+)?)\b", content)
        if not m:
            raise JudgeError(f"unparseable judge reply: {content[:80]!r}")
        return min(1.0, max(0.0, float(m.group(1))))

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        if gold.judge != "text":
            return RuleJudge()(response, gold)
        prompt = JUDGE_PROMPT.format(question=self.question or "(see reference)", gold=gold.answer, response=response)
        key = self._key(prompt)
        cached = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if cached and cached.exists():
            return json.loads(cached.read_text())["score"]
        try:
            score = self._request(prompt)
        except (RemoteError, JudgeError) as exc:
            self.failures.append(f"{key[:12]}: {exc}")
            self._consecutive += 1
            if self._consecutive >= self.max_consecutive_failures:  # a breaker: the server is gone, stop
                raise JudgeUnavailable(
                    f"the judge failed {self._consecutive} times in a row (last: {exc}); scoring stopped. The "
                    "trajectories are kept: re-score with 'evostreaming eval report DIR --judge ...' once it is up"
                ) from None
            return None
        self._consecutive = 0
        if cached:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps({"score": score, "prompt": prompt}))
        return score


def _from_spec(args: str | None, cache_dir: Path | None) -> OpenAIJudge:
    """``URL,model=NAME[,api_key=KEY]``, read by the one endpoint-spec parser (``utils.openai_spec``: the
    key from ``api_key=``, else EVOSTREAMING_API_KEY or OPENAI_API_KEY; the old ``key=ENVVAR`` still
    works, with a deprecation message)."""
    spec = parse_spec(f"openai:{args or ''}", flag="--judge", need_model=True)
    if not spec.url:
        raise ValueError("--judge openai:URL,model=NAME: the URL is missing")
    return OpenAIJudge(
        spec.url, spec.model, api_key=spec.api_key, cache_dir=cache_dir, timeout_s=spec.timeout_s, retries=spec.retries
    )


JUDGES.register("openai", _from_spec)
