"""The one parser of endpoint specs, ``SCHEME:URL[,model=NAME][,api_key=KEY]``, for every place that takes
an OpenAI-compatible server or our realtime server: ``--policy openai:`` / ``realtime:``, ``--judge
openai:`` (the LLM judge, PAUC's judge) and ``evolve run``'s server backend.

Keys: ``model`` (the served model's name), ``api_key`` (else the ``EVOSTREAMING_API_KEY`` variable,
then ``OPENAI_API_KEY``), ``timeout`` (seconds one attempt may wait for a reply) and ``retries`` (attempts
after the first): a stalled server fails a request after about (retries + 1) x timeout
(``utils.openai_client``: 30 s x 3 by default). An unknown key is one clear error naming the keys. The LLM judge's old
``key=ENVVAR`` (the variable holding the key) still works, with a deprecation message.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass

from evostreaming.utils.errors import UserError

KEYS = ("model", "api_key", "timeout", "retries")
DEPRECATED = {"key": "api_key"}  # old spelling -> new; ``key`` named an environment variable


class SpecError(UserError, ValueError):
    """A malformed endpoint spec (exit 2, before any work)."""


@dataclass(frozen=True)
class EndpointSpec:
    scheme: str
    url: str
    model: str | None
    api_key: str | None
    timeout_s: float | None = None  # None: the client's default
    retries: int | None = None

    @property
    def redacted(self) -> str:
        return redact(f"{self.scheme}:{self.url}" + (f",model={self.model}" if self.model else ""))


def redact(spec: str | None) -> str | None:
    """The spec as files record it: an ``api_key=`` value never reaches run.json or a job identity."""
    return re.sub(r"(api_key=)[^,]*", r"\1***", spec) if spec else spec


def split_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``scheme:URL,key=value,...`` -> (scheme, URL, options), without checking the keys."""
    scheme, _, rest = spec.partition(":")
    url, _, tail = rest.partition(",")
    opts = dict(p.split("=", 1) for p in tail.split(",") if "=" in p)
    return scheme, url, opts


def parse_spec(spec: str, *, flag: str, need_model: bool = False) -> EndpointSpec:
    """``spec`` checked: its keys known, the model given when ``need_model``; the key resolved."""
    scheme, url, opts = split_spec(spec)
    tail = spec.partition(":")[2].partition(",")[2]
    stray = [p for p in tail.split(",") if p and "=" not in p]
    unknown = sorted(set(opts) - set(KEYS) - set(DEPRECATED))
    if stray or unknown:
        bad = ", ".join([*unknown, *stray])
        raise SpecError(f"{flag} {redact(spec)!r}: unknown option {bad!r}; the options are {', '.join(KEYS)}")
    api_key = opts.get("api_key")
    if "key" in opts:
        warnings.warn(
            f"{flag}: 'key={opts['key']}' (the variable holding the key) is deprecated; write api_key=KEY "
            "or set EVOSTREAMING_API_KEY",
            FutureWarning,
            stacklevel=2,
        )
        api_key = api_key or os.environ.get(opts["key"])
    api_key = api_key or os.environ.get("EVOSTREAMING_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
    if need_model and not opts.get("model"):
        raise SpecError(f"{flag} {redact(spec)!r}: add ',model=NAME' (e.g. {scheme}:http://localhost:8000/v1,model=M)")
    timeout_s, retries = None, None
    try:
        if "timeout" in opts:
            timeout_s = float(opts["timeout"])
            if not (math.isfinite(timeout_s) and timeout_s > 0):
                raise ValueError
        if "retries" in opts:
            retries = int(opts["retries"])
            if retries < 0:
                raise ValueError
    except ValueError:
        raise SpecError(
            f"{flag} {redact(spec)!r}: timeout=SECONDS is a number > 0 and retries=N an integer >= 0"
        ) from None
    return EndpointSpec(scheme, url, opts.get("model"), api_key, timeout_s, retries)
