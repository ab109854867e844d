"""The realtime protocol ``evostreaming.v1`` (docs/server.md): event names after the OpenAI Realtime API,
frames as binary WebSocket messages with a small header.

Every event is a pydantic model with a literal ``type``: client events are parsed through them (a bad
one gets one ``error`` event naming the field, and the session goes on), server events are built from
them. ``tests/test_serve.py`` checks the protocol table of docs/server.md against these models.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

PROTOCOL = "evostreaming.v1"
AUTH_PREFIX = "bearer."  # browsers cannot set WebSocket headers: the token travels as a subprotocol
# A binary frame message: magic, sequence number, media time (seconds), then the image bytes.
FRAME_MAGIC = b"ESF1"
FRAME_HEADER = struct.Struct(">4sId")


class ProtocolError(ValueError):
    """A message the server cannot use; ``code`` names it for the client."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FrameMessage:
    seq: int
    time: float
    data: bytes  # JPEG / PNG / WebP bytes


def pack_frame(seq: int, time: float, data: bytes) -> bytes:
    return FRAME_HEADER.pack(FRAME_MAGIC, seq, time) + data


def _check_time(seq: int, time: float) -> None:
    if not math.isfinite(time) or time < 0:
        raise ProtocolError("bad_frame", f"frame {seq}: its media time must be a finite number >= 0; got {time}")


def unpack_frame(message: bytes) -> FrameMessage:
    if len(message) < FRAME_HEADER.size or message[:4] != FRAME_MAGIC:
        raise ProtocolError("bad_frame", f"a binary message must start with the {FRAME_MAGIC!r} frame header")
    _, seq, time = FRAME_HEADER.unpack_from(message)
    _check_time(seq, time)
    return FrameMessage(seq, time, message[FRAME_HEADER.size :])


# -- client events ------------------------------------------------------------------------------------
class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class UploadSource(_Event):
    type: Literal["upload"]
    id: str


class UrlSource(_Event):
    type: Literal["url"]
    url: str


class ClientSource(_Event):
    type: Literal["client"]


class SessionSettings(_Event):
    """What ``session.update`` may set; each field is checked here (type, range), the server's limits
    (``max_fps``, the prompt's length) where the connection applies them."""

    fps: float | None = Field(None, gt=0, allow_inf_nan=False)
    system_prompt: str | None = None
    visual_tokens_per_frame: int | None = Field(None, ge=1, le=16384)
    source: Annotated[UploadSource | UrlSource | ClientSource, Field(discriminator="type")] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, v):
        if v is None:  # leave a setting out to keep it; null is no value
            raise ValueError("null is not a value: leave the field out to keep the current setting")
        return v

    @field_validator("fps", mode="before")
    @classmethod
    def _int_fps(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v  # JSON has one number type


class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: SessionSettings


class InputText(_Event):
    type: Literal["input_text", "text"]
    text: str


class Item(_Event):
    model_config = ConfigDict(extra="ignore", strict=True)  # OpenAI's item carries more (id, status)
    type: Literal["message"] = "message"
    role: Literal["user"] = "user"
    content: list[InputText] = Field(min_length=1)


class ConversationItemCreate(_Event):
    type: Literal["conversation.item.create"]
    item: Item | None = None
    text: str | None = None

    def question(self) -> str:
        text = (
            self.text if self.text is not None else " ".join(p.text for p in (self.item.content if self.item else []))
        )
        if not text.strip():
            raise ProtocolError("bad_item", "conversation.item.create needs item.content with an input_text part")
        return text


class InputFrame(_Event):
    """The base64 JSON fallback of a binary frame."""

    type: Literal["input_frame"]
    seq: int = Field(ge=0, lt=2**32)
    time: float = Field(ge=0, allow_inf_nan=False)
    image: str  # data:image/jpeg;base64,... or bare base64

    @field_validator("time", mode="before")
    @classmethod
    def _int_time(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    def frame(self) -> FrameMessage:
        image = self.image.split(",", 1)[1] if self.image.startswith("data:") else self.image
        try:
            data = base64.b64decode(image, validate=True)
        except ValueError as exc:
            raise ProtocolError("bad_frame", f"input_frame.image: not base64 ({exc})") from exc
        return FrameMessage(self.seq, self.time, data)


class SessionClose(_Event):
    type: Literal["session.close"]


ClientEvent = Annotated[SessionUpdate | ConversationItemCreate | InputFrame | SessionClose, Field(discriminator="type")]
CLIENT_EVENTS = {m.model_fields["type"].annotation.__args__[0]: m for m in ClientEvent.__origin__.__args__}
_CLIENT = TypeAdapter(ClientEvent)


def _where(error: dict) -> str:
    loc = [str(x) for x in error["loc"]]
    if len(loc) > 1 and loc[0] in CLIENT_EVENTS:  # the discriminator's branch: not a field name
        loc = loc[1:]
    return ".".join(loc) or "event"


def parse_client_event(text: str) -> ClientEvent:
    """A client's JSON text as its typed event; ``ProtocolError`` naming the field otherwise."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("bad_json", f"not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ProtocolError("bad_json", "an event is a JSON object with a 'type'")
    kind = raw.get("type")
    if kind not in CLIENT_EVENTS:
        raise ProtocolError("unknown_event", f"unknown event type {kind!r}; one of: {', '.join(CLIENT_EVENTS)}")
    try:
        return _CLIENT.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        code = {"input_frame": "bad_frame", "conversation.item.create": "bad_item"}.get(kind, "bad_setting")
        got = first.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {json.dumps(got)[:60]})"
        raise ProtocolError(code, f"{kind}: {_where(first)}: {first['msg']}{shown}") from exc


# -- server events ------------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=False)


class SessionCreated(_Out):
    type: Literal["session.created"] = "session.created"
    protocol: str = PROTOCOL
    session: dict[str, Any]
    limits: dict[str, Any]


class SessionUpdated(_Out):
    type: Literal["session.updated"] = "session.updated"
    session: dict[str, Any]


class ConversationItemCreated(_Out):
    type: Literal["conversation.item.created"] = "conversation.item.created"
    text: str
    bound_to: str = "next frame"


class FrameDecision(_Out):
    type: Literal["frame.decision"] = "frame.decision"
    seq: int
    time: float
    action: Literal["silent", "respond"]
    p_silent: float
    step_ms: float
    cache_tokens: int
    cache_bytes: int
    question: str | None


class FrameDropped(_Out):
    type: Literal["frame.dropped"] = "frame.dropped"
    seq: int
    reason: Literal["size", "pixels", "decode", "rate", "order", "superseded"]
    message: str


class ResponseCreated(_Out):
    type: Literal["response.created"] = "response.created"
    response_id: str
    seq: int
    time: float


class ResponseTextDelta(_Out):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    response_id: str
    delta: str


class ResponseDone(_Out):
    type: Literal["response.done"] = "response.done"
    response_id: str
    seq: int
    time: float
    text: str
    tokens: int


class SourceEnded(_Out):
    type: Literal["source.ended"] = "source.ended"
    message: str


class ErrorEvent(_Out):
    type: Literal["error"] = "error"
    code: str
    message: str


class SessionStats(_Out):
    type: Literal["session.stats"] = "session.stats"
    session_id: str
    frames_received: int
    decisions: int
    responses: int
    dropped: dict[str, int]
    questions: int
    cache_tokens: int
    cache_bytes: int
    seconds: float
    reason: str | None = None


SERVER_EVENTS = {
    m.model_fields["type"].default: m
    for m in (
        SessionCreated,
        SessionUpdated,
        ConversationItemCreated,
        FrameDecision,
        FrameDropped,
        ResponseCreated,
        ResponseTextDelta,
        ResponseDone,
        SourceEnded,
        ErrorEvent,
        SessionStats,
    )
}
