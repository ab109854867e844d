"""Crash-tolerant JSON Lines: the append-as-you-go format of every long job (evaluation,
self-evolution stages). A line cut by a crash is skipped when reading and cut off before the
next append, so the item it held is simply redone."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from evostreaming.utils.errors import UserError


class JsonlError(UserError, ValueError):
    """A line that is not JSON *before* the file's last one: not a crash's cut tail but damage (an
    edit, two writers, a bad copy). Skipping it would drop its item from every score silently."""


def read_jsonl(path: Path) -> list[dict]:
    """The rows of ``path``: a cut last line (a crash mid-write) is skipped; a bad line before it is an
    error naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == last:
                continue
            raise JsonlError(
                f"{path}:{i + 1}: not valid JSON ({exc.msg} at column {exc.colno}) before the file's last line, "
                "so not a crash's cut tail: restore that line or delete it (its item is then run again)"
            ) from None
    return rows


def drop_partial_tail(path: Path) -> None:
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_jsonl(path: Path, rows: Iterable[dict], *, sync: bool = False) -> None:
    """Append rows, flushed (and fsynced with ``sync``) before returning."""
    drop_partial_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.flush()
        if sync:
            os.fsync(f.fileno())
