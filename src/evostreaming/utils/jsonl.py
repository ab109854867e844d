"""Crash-tolerant JSON Lines: the append-as-you-go format of every long job (evaluation,
self-evolution stages). A line cut by a crash is skipped when reading and cut off before the
next append, so the item it held is simply redone."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
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
