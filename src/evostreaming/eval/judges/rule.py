"""The rule judge: option letters, integers (digits or number words), yes/no, exact text, and a
normalized containment rule for free text. Deterministic; the default."""

from __future__ import annotations

import re

from evostreaming.eval.judges.base import JUDGES, Judge
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


JUDGES.register("rule", lambda args, cache_dir: RuleJudge())
