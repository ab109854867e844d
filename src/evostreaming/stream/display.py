"""Live terminal display of a stream: a rich live panel on a terminal, plain lines when piped."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from evostreaming.stream.session import StepResult


class StreamDisplay:
    def __init__(self, console: Console, title: str = "stream", keep: int = 12):
        self.console = console
        self.title = title
        self.keep = keep
        self.responses: list[StepResult] = []
        self.last: StepResult | None = None
        self.steps = 0
        self.live: Live | None = None

    def __enter__(self) -> StreamDisplay:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def update(self, res: StepResult) -> None:
        self.steps += 1
        self.last = res
        if res.user_text and not self.live:
            print(f"[{res.time:8.2f}s] USER: {res.user_text}", flush=True)
        if res.action == "respond":
            self.responses.append(res)
            if not self.live:
                print(f"[{res.time:8.2f}s] {res.text}", flush=True)
        if self.live:
            self.live.update(self._render())

    def _render(self):
        table = Table(show_header=True, header_style="bold", expand=True)
        table.add_column("time", justify="right", width=9)
        table.add_column("response")
        for r in self.responses[-self.keep :]:
            table.add_row(f"{r.time:.1f}s", r.text)
        status = Text("waiting for the first frame...")
        if self.last:
            status = Text(
                f"t={self.last.time:.1f}s  steps={self.steps}  responses={len(self.responses)}  "
                f"last step {self.last.latency_s * 1000:.0f} ms  cache={self.last.cache_tokens} tokens  "
                f"P(silent)={self.last.silence_prob:.2f}"
            )
        return Panel(Group(table, status), title=self.title)
