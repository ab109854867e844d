"""The progress bar shared by long jobs: label and a status field, bar, count, elapsed, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def job_progress(console: Console, label: str) -> Progress:
    """Tasks show ``{status}`` after the label (e.g. a running loss); pass ``status=""`` to add_task."""
    return Progress(
        TextColumn(f"[bold]{label}[/] {{task.fields[status]}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
