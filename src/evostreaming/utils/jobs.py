"""What every resumable job shares (``eval run``, ``evolve run``, ``train lora``, ``world train-pocket``):

* the output folder is created and proven writable before any work;
* one writer per folder: an exclusive lock (``fcntl.flock`` on ``.lock``, holding the pid and host);
  the kernel releases it when its process dies, so a stale lock from a killed job is taken over;
* a job identity (``job.json``): what the job runs and every setting that changes its results. A
  re-run resumes only when the identity matches; otherwise it stops before any work, naming each
  difference and how to go on (another folder, or ``--overwrite``);
* atomic writes (temp file + rename), so a late failure never leaves half a result file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evostreaming import __version__
from evostreaming.utils.errors import UserError

STAMP = "job.json"
LOCK = ".lock"


class JobError(UserError, ValueError):
    """A user error about a job's folder: the message says what, where and how to fix it."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str))


def ensure_writable(folder: Path, flag: str = "--output") -> Path:
    """Create ``folder`` and prove it takes files, before any expensive work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise JobError(f"{folder} is a file, not a folder; choose another {flag}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise JobError(f"{folder}: cannot write there ({exc.strerror or exc}); choose another {flag}") from None
    return folder


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, sorted): a data file's identity."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def edge_digest(path: Path, edge: int) -> str:
    """sha256 of a big file's size and its first and last ``edge`` bytes: a cheap content identity
    (weights, videos) that a copy keeps and a replaced or re-encoded file does not."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(edge))
        if size > 2 * edge:
            fh.seek(size - edge)
        h.update(fh.read())
    return h.hexdigest()


def video_fingerprint(path: str | Path) -> str | None:
    """A local video's content identity (size, first and last MB), recorded with each trajectory. None
    for a URL or a file that cannot be read."""
    if "://" in str(path):
        return None
    try:
        return edge_digest(Path(path), 1 << 20)[:16]
    except OSError:
        return None


@contextmanager
def folder_lock(folder: Path, name: str = LOCK) -> Iterator[None]:
    """Hold ``folder``'s exclusive lock for the block; another holder makes this raise JobError."""
    path = Path(folder) / name
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise JobError(
                f"{folder} is in use by {holder}; wait for that job to finish, or use another --output"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock


def _differences(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {_short(old)} -> {_short(new)}"]


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _clear(folder: Path) -> None:
    for child in folder.iterdir():
        if child.name.startswith(LOCK):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def check_identity(folder: Path, kind: str, identity: dict, *, overwrite: bool = False) -> bool:
    """Compare ``identity`` with the folder's ``job.json``; write it on a first start. Returns True
    when resuming. A mismatch, or a non-empty folder without ``job.json``, raises JobError unless
    ``overwrite``, which empties the folder first; a mismatch with a job that left nothing but its
    ``job.json`` is a fresh start. Call with the folder's lock held."""
    folder = Path(folder)
    identity = json.loads(json.dumps({**identity, "code_version": __version__}, default=str))  # as it reads back
    path = folder / STAMP
    if path.exists():
        old = json.loads(path.read_text())
        before = old.get("identity")
        if isinstance(before, dict):  # a setting a newer version no longer counts (retired) does not differ
            before = {k: v for k, v in before.items() if k in identity}
        if old.get("kind") == kind and before == identity:
            if before != old.get("identity"):
                write_json(path, {**old, "identity": identity})
            return True
        # A job that stopped before it wrote anything (a misspelt --model, a dead server) left only its
        # job.json: there is nothing to mix, so the corrected re-run starts afresh instead of being refused.
        if not overwrite and any(p.name != STAMP and not p.name.startswith(LOCK) for p in folder.iterdir()):
            what = [f"kind: {old.get('kind')} -> {kind}"] if old.get("kind") != kind else _differences(before, identity)
            raise JobError(
                f"{folder} holds a different {old.get('kind', 'job')!r} job ({path}); resuming would mix two jobs. "
                f"Differences: {'; '.join(what)}. Use a new --output, or --overwrite to discard that run."
            )
    elif any(not p.name.startswith(LOCK) for p in folder.iterdir()) and not overwrite:
        raise JobError(
            f"{folder} is not empty and has no {STAMP}, so its files cannot be matched to this {kind}; "
            "use a new --output, or --overwrite to discard them"
        )
    if overwrite:
        _clear(folder)
    write_json(path, {"kind": kind, "identity": identity, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    return False


@contextmanager
def job(folder: Path, kind: str, identity: dict, *, overwrite: bool = False) -> Iterator[bool]:
    """The door of a resumable job: a writable folder, its lock, its identity. Yields True when resuming."""
    folder = ensure_writable(folder)
    with folder_lock(folder):
        yield check_identity(folder, kind, identity, overwrite=overwrite)
