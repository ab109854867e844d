"""Server settings: where it listens, who may use it, and the limits that keep sessions apart."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """Defaults sized for a 2-core CPU machine with the pocket model (docs/server.md)."""

    # each field is also its `serve` flag (cli.common.config_options): the help lives here
    max_sessions: int = field(default=4, metadata={"help": "concurrent sessions; more are refused (close 1013)"})
    max_frame_bytes: int = field(default=2_000_000, metadata={"help": "largest encoded frame accepted"})
    max_fps: float = field(
        default=4.0, metadata={"help": "frames per second a session may send; faster ones are dropped ('rate')"}
    )
    idle_timeout_s: float = field(
        default=120.0,
        metadata={"help": "seconds without a message before a session is closed", "flag": "--idle-timeout"},
    )
    max_session_s: float = field(
        default=4 * 3600.0, metadata={"help": "longest a session may last, seconds", "flag": "--max-session-seconds"}
    )
    max_upload_bytes: int = field(default=500_000_000, metadata={"help": "largest upload accepted (POST /v1/uploads)"})
    max_question_chars: int = field(default=2000, metadata={"help": "longest question a session may ask"})
    memory_window_s: float = field(
        default=120.0,
        metadata={"help": "seconds of frames each session keeps (0 = unbounded)", "flag": "--memory-window"},
    )
    max_frame_pixels: int = field(
        default=8_388_608, metadata={"help": "largest frame (width x height), read from its header before decoding"}
    )
    max_prompt_chars: int = field(default=8000, metadata={"help": "longest system prompt a session may set"})

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
    host: str = field(
        default="127.0.0.1", metadata={"help": "address to listen on; anything but loopback needs --api-key"}
    )
    port: int = field(default=8000, metadata={"help": "port (0: any free one; the chosen one is printed)"})
    api_key: str | None = field(
        default=None,
        metadata={"help": "bearer token every /v1 route and the WebSocket require", "envvar": "EVOSTREAMING_API_KEY"},
    )
    allowed_url_hosts: tuple[str, ...] = ()  # hosts a session may ask the server to read (rtsp/http)
    upload_dir: Path = field(default=Path("runs/serve/uploads"), metadata={"help": "where uploads are written"})
    limits: Limits = field(default_factory=Limits)
    silence_threshold: float | None = field(
        default=None,
        metadata={"help": "silent iff P(marker) >= this (higher = more talkative); default: greedy decision"},
    )
    max_new_tokens: int = field(default=48, metadata={"help": "longest response"})
    # one packed forward for every session with work (stream.engine); False: one session at a time
    batch: bool = field(
        default=True,
        metadata={
            "help": "one packed forward for all sessions with work, or one session at a time",
            "decls": ("--batch/--round-robin",),
        },
    )
    max_batch_tokens: int = field(default=8192, metadata={"help": "new tokens per packed forward (--batch)"})

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

    def check_can_listen(self) -> None:
        """Bind ``host:port`` once and let go, as uvicorn will (SO_REUSEADDR, every address the host
        resolves to), so that a port in use or an address not on this machine is reported before
        minutes of model loading, not after. Raises ValueError naming the flag."""
        import errno
        import socket

        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ValueError(f"--host {self.host}: not an address or name this machine resolves ({exc})") from None
        bound = 0  # like asyncio's create_server: a family this machine lacks is skipped, not an error
        for family, kind, proto, _, address in infos:
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:
                continue
            with sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(address)
                    bound += 1
                except OSError as exc:
                    if exc.errno == errno.EADDRNOTAVAIL:
                        continue
                    hint = "another server holds it; choose another --port (0 = any free port)"
                    if exc.errno != errno.EADDRINUSE:
                        hint = "is --host an address of this machine?"
                    where = f"{self.host}:{self.port}"
                    raise ValueError(f"cannot listen on {where} ({exc.strerror or exc}); {hint}") from None
        if not bound:
            raise ValueError(f"cannot listen on {self.host}:{self.port}: --host is not an address of this machine")
