"""EvoStreaming: offline VideoLLMs as natively streaming assistants."""

__version__ = "0.1.0"
