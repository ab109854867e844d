"""A checkpoint's turn format, cut from its own chat template.

The session writes a stream as pieces (system turn, user-turn opening, frame, user text, generation
prompt, reply, turn end). Rather than trusting hand-written strings, ``derive_turn_format`` renders
probe conversations with sentinel texts through the template (``apply_chat_template``) and cuts the
pieces out, so a template update on the hub is followed without code changes. The cut is verified:
the pieces must rebuild the template's own rendering of the probe conversation. Where no
incremental session can match a template exactly (its generation prompt is not how it writes a
finished reply, as LLaVA-OneVision's current template does), the format says so in ``mismatch`` and
the session follows the generation prompt, i.e. what the model is asked to continue.
"""

from __future__ import annotations

from dataclasses import dataclass

SYS, TXT, REPLY, TXT2 = "QQSYSQQ", "QQTXTAQQ", "QQREPLYQQ", "QQTXTBQQ"  # plain text no template alters
END_TOKENS = ("<|im_end|>", "<end_of_utterance>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class TurnFormat:
    system_open: str
    system_close: str
    preamble: str  # what the template writes when there is no system message (a default system turn, a BOS)
    user_open: str
    frame: str
    text_prefix: str
    assistant_open: str  # the user turn's end and the assistant header: the generation prompt
    reply_prefix: str
    assistant_close: str
    mismatch: str | None = None  # why streaming cannot equal the template exactly, and what is done

    def system(self, prompt: str) -> str:
        return self.system_open + prompt + self.system_close


def _render(tokenizer, template: str, messages: list[dict], generation: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation
    )


def _text(t: str) -> dict:
    return {"type": "text", "text": t}


def _user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


IMAGE = {"type": "image"}


def _inserted(short: str, long: str) -> str:
    """The text ``long`` has that ``short`` lacks, when ``long`` is ``short`` with one insertion."""
    n = 0
    while n < len(short) and short[n] == long[n]:
        n += 1
    piece = long[n : n + len(long) - len(short)]
    if short[:n] + piece + short[n:] != long:
        raise TemplateError("the template does not render a second image as one more placeholder")
    return piece


def _find(text: str, what: str, start: int, name: str) -> int:
    i = text.find(what, start)
    if i < 0:
        raise TemplateError(f"the template does not render the {name} where a turn format would")
    return i


def _split_close(gap: str, end_tokens: tuple[str, ...]) -> tuple[str, str]:
    """Cut the text between a reply and the next frame into the turn end and the next user opening."""
    hits = [(gap.find(t), t) for t in end_tokens if t and gap.find(t) >= 0]
    if not hits:
        raise TemplateError(f"no end-of-turn token in {gap!r}")
    i, tok = min(hits)
    j = i + len(tok)
    while j < len(gap) and gap[j] == "\n":
        j += 1
    return gap[:j], gap[j:]


def derive_turn_format(tokenizer, template: str, end_tokens: tuple[str, ...] = ()) -> TurnFormat:
    """Cut ``template`` into a ``TurnFormat``; raises TemplateError when it cannot be cut and verified."""
    ends = tuple(dict.fromkeys([*end_tokens, getattr(tokenizer, "eos_token", None) or "", *END_TOKENS]))
    try:
        one = _render(tokenizer, template, [_user(IMAGE, _text(TXT))], False)
        two = _render(tokenizer, template, [_user(IMAGE, IMAGE, _text(TXT))], False)
        conversation = [
            {"role": "system", "content": [_text(SYS)]},
            _user(IMAGE, _text(TXT)),
            {"role": "assistant", "content": [_text(REPLY)]},
            _user(IMAGE, _text(TXT2)),
        ]
        full = _render(tokenizer, template, conversation, True)
        history = _render(tokenizer, template, conversation[:3], False)
    except TemplateError:
        raise
    except Exception as exc:  # a template that cannot render these messages (jinja errors, strict checks)
        raise TemplateError(f"the template cannot render a probe conversation ({exc})") from exc
    frame = _inserted(one, two)
    i_sys = _find(full, SYS, 0, "system text")
    i_f1 = _find(full, frame, i_sys + len(SYS), "first frame")
    i_t1 = _find(full, TXT, i_f1 + len(frame), "user text")
    i_r = _find(full, REPLY, i_t1 + len(TXT), "reply")
    i_f2 = _find(full, frame, i_r + len(REPLY), "second frame")
    i_t2 = _find(full, TXT2, i_f2 + len(frame), "second user text")
    text_prefix = full[i_f1 + len(frame) : i_t1]
    if full[i_f2 + len(frame) : i_t2] != text_prefix:
        raise TemplateError("the template writes user text differently in later turns")
    close, user_open = _split_close(full[i_r + len(REPLY) : i_f2], ends)
    after_system = full[i_sys + len(SYS) : i_f1]
    if not after_system.endswith(user_open):
        raise TemplateError("the first user turn opens differently from later ones")
    generation = full[i_t2 + len(TXT2) :]
    mid = full[i_t1 + len(TXT) : i_r]
    mismatch = None
    if mid.startswith(generation):
        reply_prefix = mid[len(generation) :]
    else:
        reply_prefix = ""
        mismatch = (
            f"the generation prompt {generation!r} differs from how a finished reply is written ({mid!r}); the "
            "session feeds the generation prompt (what the model is asked to continue) before every reply, so "
            "past replies in its cache differ from apply_chat_template's rendering by that difference"
        )
    prefix_alone = one[: one.find(frame)]
    if not prefix_alone.endswith(user_open):
        raise TemplateError("a conversation without a system turn opens its user turn differently")
    fmt = TurnFormat(
        system_open=full[:i_sys],
        system_close=after_system[: len(after_system) - len(user_open)],
        preamble=prefix_alone[: len(prefix_alone) - len(user_open)],
        user_open=user_open,
        frame=frame,
        text_prefix=text_prefix,
        assistant_open=generation,
        reply_prefix=reply_prefix,
        assistant_close=close,
        mismatch=mismatch,
    )
    _verify(fmt, full, history, one)
    return fmt


def _verify(fmt: TurnFormat, full: str, history: str, one: str) -> None:
    """The pieces must rebuild the template's renderings (bar a declared mismatch)."""

    def step(text: str) -> str:
        return fmt.user_open + fmt.frame + fmt.text_prefix + text + fmt.assistant_open

    rebuilt = fmt.system(SYS) + step(TXT) + fmt.reply_prefix + REPLY + fmt.assistant_close + step(TXT2)
    rebuilt_history = fmt.system(SYS) + step(TXT) + fmt.reply_prefix + REPLY + fmt.assistant_close
    alone = fmt.preamble + fmt.user_open + fmt.frame + fmt.text_prefix + TXT
    if not one.startswith(alone):
        raise TemplateError("the pieces do not rebuild a conversation without a system turn")
    if fmt.mismatch is None and (rebuilt != full or rebuilt_history != history):
        raise TemplateError("the pieces do not rebuild the template's rendering")


class TemplateWarning(UserWarning):
    """A chat template that cannot be streamed exactly, or cannot be cut (the family's pieces are used)."""


_FORMATS: dict[str, TurnFormat | None] = {}


def turn_format_for(processor, family: str) -> TurnFormat | None:
    """The turn format of ``processor``'s chat template (cached per template text). Says once, as a
    ``TemplateWarning``, when a template cannot be streamed exactly and what the session does, or when
    it cannot be cut and the family's hand-written pieces are used. None without a template."""
    import warnings

    tokenizer = getattr(processor, "tokenizer", processor)
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        return None
    if template not in _FORMATS:
        try:
            fmt = derive_turn_format(tokenizer, template)
            if fmt.mismatch:
                warnings.warn(f"{family} chat template: {fmt.mismatch}", TemplateWarning, stacklevel=3)
        except TemplateError as exc:
            fmt = None
            warnings.warn(
                f"{family} chat template cannot be cut into streaming turns ({exc}); using the family's own turn "
                "format (check it against the template: docs/streaming.md)",
                TemplateWarning,
                stacklevel=3,
            )
        _FORMATS[template] = fmt
    return _FORMATS[template]
