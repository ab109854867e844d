"""The streaming runtime: a model watching a stream over a persistent KV cache; bounded memory; silence."""

from evostreaming.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "StreamingSession": "session",
        "SessionConfig": "session",
        "StepResult": "session",
        "DEFAULT_SYSTEM_PROMPT": "session",
        "MemoryPolicy": "memory",
        "DEFAULT_SILENCE_MARKER": "decision",
        "decide": "decision",
        "run_stream": "runner",
        "UserTurn": "runner",
        "Turn": "conversation",
        "render_conversation": "conversation",
        "render_offline": "conversation",
    },
)
