"""Which process of a data-parallel run this is, and what data parallelism needs from the run's settings
(checked before any process starts). ``compare.core.distributed`` runs the group."""

import os
from dataclasses import dataclass

from compare.errors import InputError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
MAX_WORLD_SIZE = 64


@dataclass(frozen=True)
class Membership:
    """This process's place in the group."""

    rank: int
    world_size: int
    local_rank: int
    torchrun: bool  # started by torchrun (rendezvous from the environment) or by the run command


def torchrun_environment() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def membership(world_size: int | None) -> Membership | None:
    """Who this process is: from torchrun's environment, or rank 0 of ``--world-size`` ranks it will
    start itself; ``None`` for a single-process run (no flag, no torchrun)."""
    if torchrun_environment():
        env_world = int(os.environ["WORLD_SIZE"])
        if world_size is not None and world_size != env_world:
            raise InputError(f"--world-size {world_size} disagrees with torchrun's WORLD_SIZE={env_world}")
        return Membership(int(os.environ["RANK"]), env_world, int(os.environ["LOCAL_RANK"]), torchrun=True)
    if world_size is None:
        return None
    if not 1 <= world_size <= MAX_WORLD_SIZE:
        raise InputError(f"--world-size must be between 1 and {MAX_WORLD_SIZE}, got {world_size}")
    return Membership(0, world_size, 0, torchrun=False)


def check(member: Membership, batch_size: int, batchnorm: bool, device: str) -> None:
    """What data parallelism needs from the run's other settings, checked before any process starts."""
    if batch_size % member.world_size:
        raise InputError(
            f"--batch-size {batch_size} must be a multiple of the world size {member.world_size}: "
            "equal shards make the mean of the shards' gradients the full batch's gradient"
        )
    if batchnorm and device == "cpu" and member.world_size > 1:
        raise InputError(
            "--batchnorm with --world-size > 1 needs --device cuda: each CPU replica would normalise its "
            "shard by the shard's own statistics (not the full batch's), and torch's SyncBatchNorm runs on GPUs only"
        )


def ranks_here(member: Membership | None) -> int:
    """How many ranks run on this machine (each needs its own GPU with --device cuda)."""
    if member is None:
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", member.world_size)) if member.torchrun else member.world_size
