"""The realtime protocol ``evostreaming.v1`` (docs/server.md): event names after the OpenAI Realtime API,
frames as binary WebSocket messages with a small header."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

PROTOCOL = "evostreaming.v1"
AUTH_PREFIX = "bearer."  # browsers cannot set WebSocket headers: the token travels as a subprotocol
# A binary frame message: magic, sequence number, media time (seconds), then the image bytes.
FRAME_MAGIC = b"ESF1"
FRAME_HEADER = struct.Struct(">4sId")

CLIENT_EVENTS = ("session.update", "conversation.item.create", "input_frame", "session.close")
SERVER_EVENTS = (
    "session.created",
    "session.updated",
    "frame.decision",
    "frame.dropped",
    "response.created",
    "response.output_text.delta",
    "response.done",
    "session.stats",
    "error",
)


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


def unpack_frame(message: bytes) -> FrameMessage:
    if len(message) < FRAME_HEADER.size or message[:4] != FRAME_MAGIC:
        raise ProtocolError("bad_frame", f"a binary message must start with the {FRAME_MAGIC!r} frame header")
    _, seq, time = FRAME_HEADER.unpack_from(message)
    return FrameMessage(seq, time, message[FRAME_HEADER.size :])


def frame_from_json(event: dict) -> FrameMessage:
    """The base64 JSON fallback: ``{"type": "input_frame", "seq", "time", "image": "data:image/jpeg;base64,..."}``."""
    try:
        image = event["image"]
        data = base64.b64decode(image.split(",", 1)[1] if image.startswith("data:") else image, validate=True)
        return FrameMessage(int(event["seq"]), float(event["time"]), data)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProtocolError("bad_frame", f"input_frame needs seq, time and a base64 image ({exc})") from exc


def question_text(event: dict) -> str:
    """The user's text of a ``conversation.item.create`` (OpenAI Realtime shape, or ``{"text": ...}``)."""
    item = event.get("item") or {}
    if isinstance(event.get("text"), str):
        return event["text"]
    parts = item.get("content") or []
    texts = [p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") in ("input_text", "text")]
    if not texts or not "".join(texts).strip():
        raise ProtocolError("bad_item", "conversation.item.create needs item.content with an input_text part")
    return " ".join(texts)
