"""Server settings: where it listens, who may use it, and the limits that keep sessions apart."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """Defaults sized for a 2-core CPU machine with the pocket model (docs/server.md)."""

    max_sessions: int = 4
    max_frame_bytes: int = 2_000_000
    max_fps: float = 4.0  # frames arriving faster are dropped with reason "rate"
    idle_timeout_s: float = 120.0
    max_session_s: float = 4 * 3600.0
    max_upload_bytes: int = 500_000_000
    max_question_chars: int = 2000
    memory_window_s: float = 120.0  # bounded memory for every served session (0 = unbounded)
    max_frame_pixels: int = 8_388_608  # 4K UHD; read from the image header before decoding
    max_prompt_chars: int = 8000  # a session's system prompt

    def __post_init__(self) -> None:
        for name in (
            "max_sessions",
            "max_frame_bytes",
            "max_upload_bytes",
            "max_question_chars",
            "max_frame_pixels",
            "max_prompt_chars",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        for name in ("max_fps", "idle_timeout_s", "max_session_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0; got {getattr(self, name)}")
        if self.memory_window_s < 0:
            raise ValueError(f"--memory-window must be >= 0 seconds; got {self.memory_window_s}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    allowed_url_hosts: tuple[str, ...] = ()  # hosts a session may ask the server to read (rtsp/http)
    upload_dir: Path = Path("runs/serve/uploads")
    limits: Limits = field(default_factory=Limits)
    silence_threshold: float | None = None
    max_new_tokens: int = 48
    # one packed forward for every session with work (stream.engine); False: one session at a time
    batch: bool = True
    max_batch_tokens: int = 8192  # new tokens per packed forward (a frame's turn is one chunk)

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"--host {self.host} is reachable from other machines: give --api-key (or the EVOSTREAMING_API_KEY "
                "variable) so that only clients holding it can use the model"
            )
        if self.silence_threshold is not None and not 0.0 <= self.silence_threshold <= 1.0:
            raise ValueError(f"--silence-threshold is a probability in [0, 1]; got {self.silence_threshold}")
        if self.max_batch_tokens < 1:
            raise ValueError(f"--max-batch-tokens must be >= 1; got {self.max_batch_tokens}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"--port must be in 0..65535; got {self.port}")
