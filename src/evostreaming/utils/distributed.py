"""Data-parallel runs under ``accelerate launch`` / ``torchrun``: who am I, run-on-rank-0-and-share-the-
error, and a clean shutdown. One process (no ``WORLD_SIZE``) needs none of it and imports nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from evostreaming.utils.errors import UserError


class RankError(UserError, RuntimeError):
    """An error raised on rank 0 and re-raised on every rank."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    state: object = None  # accelerate.PartialState when world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def local_device(self, device: str) -> str:
        """``cuda`` becomes this process's own GPU (``cuda:<local rank>``) in a multi-process run."""
        if self.state is not None and device == "cuda":
            return f"cuda:{self.state.local_process_index}"
        return device


def ranks() -> Ranks:
    """This process's place in a launched run; ``Ranks()`` (rank 0 of 1) otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo processes on a CPU machine
    return Ranks(state.process_index, state.num_processes, state)


def on_rank_zero(r: Ranks, action: Callable[[], object]) -> None:
    """Run ``action`` on rank 0 and raise its error (if any) on every rank, so none waits forever."""
    if r.world == 1:
        action()
        return
    from accelerate.utils import broadcast_object_list

    message = [None]
    if r.main:
        try:
            action()
        except Exception as exc:  # re-raised below, on every rank
            message = [str(exc)]
    broadcast_object_list(message, from_process=0)
    if message[0]:
        raise RankError(message[0])


def shut_down(r: Ranks) -> None:
    """Every rank waits for the others, then closes the process group: a gloo group left to the
    interpreter's exit can abort the process ("terminate called without an active exception")."""
    import torch.distributed as dist

    if r.state is not None and dist.is_available() and dist.is_initialized():
        r.wait()
        dist.destroy_process_group()
