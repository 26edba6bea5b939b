"""Data-parallel parity: the torch twin under ``DistributedDataParallel``, the manual side in one process.

Rank 0 is the checker: it runs the manual full-batch step and its own torch replica, gathers from
every rank what the comparison needs, and alone writes the report and the event files. Ranks 1 to
N − 1 run only their torch replica. Each step, for a global batch of B examples over N ranks:

1. rank 0 broadcasts "go" (or "stop"), so a run that ends for any reason ends on every rank;
2. rank 0 broadcasts the dropout masks NumPy drew; each rank keeps its own rows;
3. rank r runs forward and backward on rows r·B/N to (r + 1)·B/N − 1 of the batch, and DDP
   all-reduces the parameter gradients during backward to their mean (1/N) Σ_r ∇L_r. With equal
   shards and a mean loss, L = (1/N) Σ_r L_r, so that mean is ∇L, the full batch's gradient:
   what the manual side computes in one process;
4. every layer's output, its gradient and the loss are all-gathered, so rank 0 compares the full
   batch: the outputs are the shards' rows in rank order, dL/d(output) = (1/N)·dL_r/d(output rows)
   and L = (1/N) Σ_r L_r;
5. every rank clips (if asked) and takes its optimizer and schedule step on the same averaged
   gradients, so the replicas stay identical with no further communication; rank 0 compares its
   optimizer state and parameters with the manual side's.

Processes start in one of two ways. ``backprop-parity run --world-size N`` makes the command itself
rank 0 and starts ranks 1 to N − 1 with ``torch.multiprocessing`` (spawn), meeting at a TCP store
on 127.0.0.1. Under ``torchrun`` every process runs the same command; the rendezvous comes from
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``).
Every collective waits at most the run's timeout: a worker that dies or hangs ends the run with
``GroupError``, never a hang. Backends: gloo on the CPU, NCCL on CUDA (one GPU per rank, BatchNorm
as ``SyncBatchNorm``, which gives every rank the full batch's statistics; on the CPU torch has no
such layer, so BatchNorm is refused there).
"""

import datetime as dt
import gc
import signal
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.multiprocessing.spawn import ProcessException
from torch.nn.parallel import DistributedDataParallel

from compare.core.torch_side import TorchSide
from compare.exits import ABORTED
from compare.inputs import devices
from compare.inputs.prepare import Prepared, batch_stream
from compare.inputs.world import Membership
from manual.spec import MLPSpec
from torch_ref import InjectedMasks, TorchTwin, build_twin

HOST = "127.0.0.1"  # ranks started by the run command meet on the loopback interface only


class GroupError(Exception):
    """A rank died, hung past the timeout, or lost its connection: the run cannot go on."""


def backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, member: Membership) -> torch.device:
    """One GPU per process on each machine: rank r's replica on ``cuda:<local rank>``."""
    return torch.device("cuda", member.local_rank) if device.type == "cuda" else device


def shard(batch: int, member_rank: int, world_size: int) -> slice:
    rows = batch // world_size
    return slice(member_rank * rows, (member_rank + 1) * rows)


class Replica:
    """One rank's torch twin under DDP, and the collectives every rank makes, in the same order."""

    def __init__(self, twin: TorchTwin, spec: MLPSpec, clip: float | None, member: Membership, masks: InjectedMasks):
        self.twin = twin
        self.member = member
        self.clip = clip
        self.device = next(twin.model.parameters()).device
        self.masks = masks  # registered before the hooks below, so they see the masked outputs
        self.dropout_widths = {node.index: node.width_out for node in spec.layout() if node.kind == "dropout"}
        self.outputs: dict[int, torch.Tensor] = {}
        for index, module in enumerate(twin.model):
            module.register_forward_hook(self._keep_output(index))
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(twin.model, device_ids=device_ids)

    def _keep_output(self, index: int):
        def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if output.requires_grad:
                output.retain_grad()  # dL/d(this output), gathered after backward
            self.outputs[index] = output

        return keep

    def go(self, proceed: bool = False) -> bool:
        """Rank 0 says whether another step follows; every other rank hears it."""
        flag = torch.tensor([int(proceed)], dtype=torch.int64, device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def train_pass(
        self, x: np.ndarray, y: np.ndarray, masks: dict[int, np.ndarray | None] | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """This rank's forward and backward on its shard; returns the full batch's layer outputs (each
        with ``.grad``, dL/d output) and loss, gathered from every rank. ``masks``: rank 0's dropout masks."""
        rows = shard(len(x), self.member.rank, self.member.world_size)
        for index, width in self.dropout_widths.items():
            full = torch.empty((len(x), width), dtype=torch.uint8, device=self.device)
            if self.member.rank == 0:
                full.copy_(torch.from_numpy(masks[index].astype(np.uint8)))
            dist.broadcast(full, src=0)
            self.masks.set(index, full[rows].bool().cpu().numpy(), self.device)
        self.twin.optimizer.zero_grad(set_to_none=True)
        self.outputs.clear()
        prediction = self.ddp(torch.from_numpy(x[rows]).to(self.device))
        loss = self.twin.loss(prediction, torch.from_numpy(y[rows]).to(self.device))
        loss.backward()  # DDP all-reduces every parameter's gradient to the mean over ranks here
        world = self.member.world_size
        outputs = [self.outputs[index] for index in range(len(self.twin.model))]
        pieces = [tensor.detach() for output in outputs for tensor in (output, output.grad)]
        gathered = gather(*pieces, loss.detach().reshape(1))
        full_outputs = []
        for index in range(len(outputs)):
            full, grad = gathered[2 * index], gathered[2 * index + 1]
            full.grad = grad / world  # dL/d out = (1/N) dL_r/d out, as L = (1/N) Σ_r L_r
            full_outputs.append(full)
        return full_outputs, gathered[-1].sum() / world

    def release(self) -> None:
        """Drop the DDP wrapper (and its reducer) before the process group goes: a reducer that outlives
        its group can abort the process at exit ("terminate called without an active exception")."""
        self.ddp = None
        gc.collect()

    def update(self) -> None:
        """The step rank 0's checker takes on its replica (compare.core.engine.Lockstep.step), on the others."""
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.twin.model.parameters(), self.clip, foreach=False)
        self.twin.optimizer.step()
        if self.twin.schedule is not None:
            self.twin.schedule.step()


def gather(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensors``, each concatenated along the batch axis in rank order: one all-gather
    of them all, flattened into one buffer (a collective per tensor would cost a round trip each)."""
    flat = torch.cat([tensor.reshape(-1) for tensor in tensors])
    parts = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, flat)
    gathered, offset = [], 0
    for tensor in tensors:
        size = tensor.numel()
        gathered.append(torch.cat([part[offset : offset + size].view(tensor.shape) for part in parts]))
        offset += size
    return gathered


def convert_batchnorm(model: nn.Sequential) -> None:
    """BatchNorm1d → SyncBatchNorm in place (same parameter objects, so the optimizer still holds them)."""
    for index, module in enumerate(model):
        if isinstance(module, nn.BatchNorm1d):
            model[index] = nn.SyncBatchNorm.convert_sync_batchnorm(module)


class Group:
    """The process group of one run, seen from rank 0 (which also starts the other ranks unless torchrun did).
    ``prepared``: the resolved run (``compare.inputs.prepare.Prepared``) the other ranks build their replicas
    from; they never see the command line."""

    def __init__(self, member: Membership, device: torch.device, timeout_s: float, prepared: Prepared):
        self.member = member
        self.timeout_s = timeout_s
        self.context: mp.ProcessContext | None = None
        self.replica: Replica | None = None
        self.closed = False
        timeout = dt.timedelta(seconds=timeout_s)
        try:
            if member.torchrun:
                dist.init_process_group(backend(device), timeout=timeout)
                return
            store = dist.TCPStore(HOST, 0, member.world_size, is_master=True, timeout=timeout, wait_for_workers=False)
            if member.world_size > 1:
                self.context = mp.start_processes(
                    worker_main,
                    args=(member.world_size, store.port, timeout_s, prepared),
                    nprocs=member.world_size - 1,
                    join=False,
                    start_method="spawn",
                )
            dist.init_process_group(backend(device), store=store, rank=0, world_size=member.world_size, timeout=timeout)
        except COLLECTIVE_ERRORS as error:
            raise self.failure(error) from None

    def side(self, twin: TorchTwin, spec: MLPSpec, clip: float | None) -> "DataParallelSide":
        """Rank 0's torch replica under DDP, as the engine's reference side."""
        if next(twin.model.parameters()).device.type == "cuda":
            convert_batchnorm(twin.model)
        return DataParallelSide(twin, self, spec, clip)

    def close(self) -> None:
        """Tell the other ranks to stop, wait for them (at most the timeout), and leave the group."""
        try:
            self.replica.go(False)
            self.replica.release()
            dist.destroy_process_group()
        except COLLECTIVE_ERRORS as error:
            raise self.failure(error) from None
        if self.context is not None:
            deadline = time.monotonic() + self.timeout_s
            try:  # join() returns as soon as one rank exits: True once every rank has
                while not self.context.join(timeout=max(0.0, deadline - time.monotonic())):
                    if time.monotonic() >= deadline:
                        raise GroupError(f"the other ranks did not exit within --dist-timeout {self.timeout_s:g} s")
            except ProcessException as error:
                raise GroupError(f"rank {error.error_index + 1} failed at the end of the run") from None
        self.closed = True

    def abort(self) -> None:
        """Stop the ranks this process started, even a stopped or hung one (SIGKILL reaches those too),
        and leave the group."""
        if self.context is not None:
            for process in self.context.processes:
                if process.is_alive():
                    process.kill()
                process.join(timeout=5)
        if self.replica is not None:
            self.replica.release()
        if dist.is_initialized():
            dist.destroy_process_group()
        self.closed = True

    def failure(self, error: Exception) -> GroupError:
        """What went wrong, in one line: a rank that exited, else a timeout or a lost connection."""
        if self.context is not None:
            for index, process in enumerate(self.context.processes):
                process.join(timeout=1)  # a rank that just died: let its exit code arrive
                if process.exitcode is not None and process.exitcode != 0:
                    return GroupError(f"rank {index + 1} exited with code {process.exitcode} during the run")
        return GroupError(
            f"a rank stopped answering: no reply within --dist-timeout {self.timeout_s:g} s or a lost connection "
            f"({first_line(error)})"
        )


class DataParallelSide(TorchSide):
    """The reference side whose forward and backward run under DDP across the group; everything else (the
    floors, the optimizer step, the state) is the local side's, on rank 0's replica."""

    def __init__(self, twin: TorchTwin, group: Group, spec: MLPSpec, clip: float | None) -> None:
        super().__init__(twin)  # its dropout-mask hooks first: the replica's hooks see the masked outputs
        self.group = group
        try:
            group.replica = Replica(twin, spec, clip, group.member, self.masks)
        except COLLECTIVE_ERRORS as error:
            raise group.failure(error) from None

    def forward_backward(
        self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        try:
            self.group.replica.go(True)
            return self.group.replica.train_pass(x, y, masks)
        except COLLECTIVE_ERRORS as error:
            raise self.group.failure(error) from None


COLLECTIVE_ERRORS = (RuntimeError, dist.DistError)  # a timeout, a closed connection, a failed store


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def worker_main(index: int, world_size: int, port: int, timeout_s: float, prepared: Prepared) -> None:
    """Rank ``index + 1`` of a group the run command started (``torch.multiprocessing`` calls this)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: rank 0 decides
    member = Membership(index + 1, world_size, index + 1, torchrun=False)
    timeout = dt.timedelta(seconds=timeout_s)
    torch.set_num_threads(1)
    device = rank_device(devices.resolve(prepared.config.device), member)

    def join(device: torch.device) -> None:
        store = dist.TCPStore(HOST, port, world_size, is_master=False, timeout=timeout)
        dist.init_process_group(backend(device), store=store, rank=member.rank, world_size=world_size, timeout=timeout)

    try:
        serve(prepared, member, device, join)
    except COLLECTIVE_ERRORS as error:
        print(f"backprop-parity: error: rank {member.rank}: {first_line(error)}", file=sys.stderr)
        sys.exit(ABORTED)


def serve(
    prepared: Prepared, member: Membership, device: torch.device, join_group: Callable[[torch.device], None]
) -> None:
    """A rank other than 0: join the group, build the replica of the same run, follow rank 0 step by step."""
    config = prepared.config
    devices.configure(device)
    join_group(device)
    hyperparameters = prepared.torch_hyperparameters  # as rank 0's twin: from the configuration alone
    twin = build_twin(
        config.spec, prepared.weights, config.optimizer, hyperparameters, config.dtype, config.schedule, device
    )
    if device.type == "cuda":
        convert_batchnorm(twin.model)
    replica = Replica(twin, config.spec, config.clip_grad_norm, member, InjectedMasks(twin.model))
    batches = batch_stream(prepared)  # the same batches as rank 0's, from the same seed
    while replica.go():
        x, y = next(batches)
        replica.train_pass(x, y)
        replica.update()
    replica.release()
    dist.destroy_process_group()
