"""Turn formats cut from chat templates (models/turns.py): they agree with the families' known turn
strings, and a session fed by them equals ``apply_chat_template`` token for token, for every released
template in ../shared/data/chat-templates/, with and without a system prompt, at every decision point
and for the whole conversation; the one unstreamable template is reported and handled as designed."""

import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, need_shared
from evostreaming.models import adapter_for, build_tiny
from evostreaming.models import turns as turns_module
from evostreaming.models.turns import TemplateError, TemplateWarning, derive_turn_format
from evostreaming.stream.session import SessionConfig, StreamingSession

TEMPLATES = SHARED / "data" / "chat-templates"
# released template -> the family whose tiny twin carries its special tokens
RELEASED = {
    "qwen2_5_vl.jinja": "qwen2_5_vl",
    "smolvlm.jinja": "smolvlm",
    "llava_onevision.jinja": "llava_onevision",
    "llava_onevision.2024-08-15-upload-processor.jinja": "llava_onevision",
}


def _hand_written_families() -> list[str]:
    from evostreaming.models.adapter import StandardAdapter
    from evostreaming.models.family import FAMILIES

    return [name for name, f in FAMILIES.items() if not issubclass(f.adapter, StandardAdapter)]


@pytest.mark.parametrize("family", _hand_written_families())  # a standard family has no strings of its own
def test_the_cut_format_equals_the_familys_known_turn_strings(family):
    tm = build_tiny(family)
    hand = adapter_for(tm.model)  # the hand-written pieces, checked against the templates for years
    fmt = derive_turn_format(tm.processor.tokenizer, tm.processor.chat_template)
    assert fmt.system("P") == hand.system("P")
    assert fmt.user_open == hand.user_open() and fmt.frame == hand.frame()
    assert fmt.text_prefix + "T" == hand.user_text("T")
    assert fmt.assistant_open == hand.assistant_open() and fmt.assistant_close == hand.assistant_close()
    assert fmt.reply_prefix + "R" == hand.reply_text("R") and fmt.mismatch is None


def test_known_released_pieces():
    need_shared(TEMPLATES)
    qwen = build_tiny("qwen2_5_vl").processor.tokenizer
    fmt = derive_turn_format(qwen, (TEMPLATES / "qwen2_5_vl.jinja").read_text())
    assert fmt.preamble == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"  # the default system
    smol = build_tiny("smolvlm").processor.tokenizer
    fmt = derive_turn_format(smol, (TEMPLATES / "smolvlm.jinja").read_text())
    assert fmt.preamble == "<|im_start|>" and fmt.user_open == "User:" and fmt.reply_prefix == " "
    llava = build_tiny("llava_onevision").processor.tokenizer
    fmt = derive_turn_format(llava, (TEMPLATES / "llava_onevision.jinja").read_text())
    assert fmt.user_open == "<|im_start|>user " and fmt.frame == "<image>" and fmt.text_prefix == "\n"
    assert fmt.assistant_open == "<|im_end|><|im_start|>assistant\n" and "differs" in fmt.mismatch


def test_a_template_that_cannot_be_cut_is_an_error():
    tok = build_tiny("qwen2_vl").processor.tokenizer
    with pytest.raises(TemplateError):
        derive_turn_format(tok, "{% for m in messages %}{{ m['role'] }}{% endfor %}")  # drops all content


def _frames(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)) for _ in range(n)]


def _session_and_reference(name, system):
    """Stream 4 steps (user text at two, a reply at two) and, at each decision point and at the end,
    compare the session's cached tokens with the template's rendering of the same conversation."""
    need_shared(TEMPLATES / name)
    tm = build_tiny(RELEASED[name])
    template = (TEMPLATES / name).read_text()
    tm.processor.chat_template = template
    s = StreamingSession(tm.model, tm.processor, config=SessionConfig(system_prompt=system), keep_inputs=True)
    frames = _frames(4)
    texts = ["What is it?", None, "And now?", None]
    replies = ["<silent>", "A red square.", "<silent>", "It moved."]
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    checks = []
    for k in range(4):
        s.push_frame(frames[k], texts[k])
        s.sync()
        content = [{"type": "image"}] + ([{"type": "text", "text": texts[k]}] if texts[k] else [])
        messages.append({"role": "user", "content": content})
        checks.append((s.cached_inputs()[0].tolist(), list(messages), True, frames[: k + 1]))
        s.append_reply(replies[k])
        messages.append({"role": "assistant", "content": [{"type": "text", "text": replies[k]}]})
    s.sync()
    checks.append((s.cached_inputs()[0].tolist(), list(messages), False, frames))

    def reference(msgs, generation, images, fix=lambda t: t):
        text = tm.processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation)
        return tm.processor(text=[fix(text)], images=images, return_tensors="pt")["input_ids"][0].tolist()

    return s, checks, reference


@pytest.mark.parametrize("system", ["You watch a stream.", ""])
@pytest.mark.parametrize("name", [n for n in RELEASED if n != "llava_onevision.jinja"])
def test_session_tokens_equal_the_released_template_at_every_decision_point(name, system):
    s, checks, reference = _session_and_reference(name, system)
    assert s.adapter.turns is not None and s.adapter.turns.mismatch is None
    for ids, msgs, generation, images in checks:
        assert ids == reference(msgs, generation, images)


@pytest.mark.parametrize("system", ["You watch a stream.", ""])
def test_the_unstreamable_template_is_reported_once_and_follows_its_generation_prompt(system):
    turns_module._FORMATS.clear()  # the warning is said once per template and process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s, checks, reference = _session_and_reference("llava_onevision.jinja", system)
    said = [w for w in caught if issubclass(w.category, TemplateWarning)]
    assert len(said) == 1 and "generation prompt" in str(said[0].message)
    ids, msgs, generation, images = checks[0]
    assert ids == reference(msgs, generation, images)  # before any reply: exact
    # afterwards, exactly the declared difference: each past reply follows the generation prompt
    for ids, msgs, generation, images in checks[1:]:
        assert ids != reference(msgs, generation, images)
        assert ids == reference(msgs, generation, images, fix=lambda t: t.replace("assistant \n", "assistant\n"))
