"""Several processes, one run: training, evaluation and margins with ``torch.distributed``.

Launched by ``torchrun --nproc_per_node N -m mma_edu train|evaluate|margins|reproduce ...`` (or a
cluster scheduler running torchrun), each process ("rank") reads its place from the environment
torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). :func:`init_from_env` joins
the process group — NCCL on CUDA, gloo on CPU — and returns a :class:`Dist`, which the library
functions take as ``dist=``. Without torchrun :func:`single` stands for one process and every
helper is a no-op, so the single-process code path is unchanged.

What the helpers guarantee (``tests/test_distributed.py``):

- **Training** (:func:`mma_edu.train.fit`): every rank takes its contiguous shard of the same
  global batch; every random draw of a step (augmentation, attack starts) is made for the whole
  global batch on every rank, which keeps its rows (:meth:`Dist.random_in_ball`), so the random
  stream is the single-process one; gradients are averaged (:meth:`Dist.average_gradients`);
  MMA's margin memory receives every rank's (index, ε̂) (:meth:`Dist.all_gather_rows`).
- **Evaluation** (:func:`mma_edu.evaluate.robust_accuracy`, ``margin_distribution``): batches are
  dealt round-robin (:meth:`Dist.owns`); per-example results are combined by a sum of disjoint
  parts (:meth:`Dist.combine_disjoint`), bitwise the single-process tensors. The random stream
  is one for the whole dataset, so a rank replays the random draws of the batches it does not own
  (the same attack with every example skipped, or with no PGD and bisection steps).
- **Batch norm**: running statistics are averaged over ranks after each step; with ``--sync-bn``
  (:func:`convert_sync_batchnorm`) batch norm normalizes with the global batch, and MMA's
  ``bn_mode="reference"`` search with the global batch's S⁺.
- Only rank 0 writes files and prints; a check that can fail runs on rank 0 and its error is
  raised on every rank (:meth:`Dist.on_main`), so no rank waits forever on one that gave up.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor, nn

from . import norms

T = TypeVar("T")

# The environment torchrun (and torch.distributed.run) sets for every worker.
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True in a worker started by torchrun (its environment names a rank and a world size)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on its node.

    ``device`` is where collectives move their tensors (the rank's GPU for NCCL, the CPU for
    gloo). ``world == 1`` (:func:`single`) makes every method a no-op.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = field(default=False, repr=False)  # this Dist joined the group (and :func:`shutdown` leaves it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process: collectives run."""
        return self.world > 1

    # -- devices -------------------------------------------------------------------------------

    def resolve_device(self, device: str | torch.device = "auto") -> torch.device:
        """The compute device of this rank: "auto" and "cuda" mean this rank's GPU, cuda:LOCAL_RANK."""
        from .device import resolve_device

        dev = resolve_device(device)
        if self.active and dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", self.local_rank)
        return dev

    # -- collectives -------------------------------------------------------------------------------

    def _to(self, t: Tensor) -> Tensor:
        return t.to(self.device)

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """The elementwise sum over ranks (a new tensor on t's device)."""
        if not self.active:
            return t
        buf = self._to(t.clone())
        torch.distributed.all_reduce(buf)
        return buf.to(t.device)

    def all_gather_rows(self, t: Tensor) -> Tensor:
        """Every rank's ``t`` (b, ...) stacked in rank order: (world·b, ...). Same b on every rank."""
        if not self.active:
            return t
        parts = [torch.empty_like(self._to(t)) for _ in range(self.world)]
        torch.distributed.all_gather(parts, self._to(t.contiguous()))
        return torch.cat(parts).to(t.device)

    def combine_disjoint(self, t: Tensor) -> Tensor:
        """Per-example results filled by their owner ranks, zero elsewhere, combined: bitwise the owner's
        values (x + 0 = x in floating point; booleans are summed as integers)."""
        if not self.active:
            return t
        if t.dtype == torch.bool:
            return self.all_reduce_sum(t.to(torch.int32)) > 0
        return self.all_reduce_sum(t)

    def max_int(self, value: int) -> int:
        """The largest ``value`` over ranks."""
        if not self.active:
            return value
        buf = torch.tensor([value], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.MAX)
        return int(buf.item())

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (the others' argument is ignored)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result on every rank; if it raises, every rank
        raises the same exception (one that cannot be pickled becomes a RuntimeError with its text)."""
        if not self.active:
            return fn()
        outcome: tuple[str, Any] = ("ok", None)
        if self.is_main:
            try:
                outcome = ("ok", fn())
            except Exception as err:  # noqa: BLE001 - re-raised on every rank below
                try:
                    pickle.dumps(err)
                    outcome = ("error", err)
                except Exception:  # noqa: BLE001
                    outcome = ("error", RuntimeError(f"{type(err).__name__}: {err}"))
        kind, value = self.broadcast_object(outcome)
        if kind == "error":
            raise value
        return value

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    # -- training ------------------------------------------------------------------------------

    def shard(self, global_batch: int) -> slice:
        """This rank's rows of a global batch of ``global_batch`` examples (contiguous, equal sizes)."""
        if global_batch % self.world:
            raise ValueError(f"batch_size ({global_batch}) must be divisible by the number of processes "
                             f"({self.world}): each rank takes batch_size / {self.world} examples of every batch")
        per = global_batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def random_in_ball(self, like: Tensor, eps: Tensor, norm: str) -> Tensor:
        """:func:`mma_edu.norms.random_in_ball` for this rank's ``like`` (m, ...) and ``eps`` (m,), drawn as
        the single process draws it: every rank draws for all ranks' rows (in rank order) and keeps its own.

        Collective (every rank calls it, m may differ per rank). Every rank's random stream advances
        exactly as the single process's, and its rows hold the values the single process gives them.
        """
        if not self.active:
            return norms.random_in_ball(like, eps, norm)
        m = like.shape[0]
        eps_rows = torch.as_tensor(eps, dtype=like.dtype, device=like.device).reshape(-1).expand(m)
        counts = self.all_gather_rows(torch.tensor([m], dtype=torch.int64, device=like.device)).tolist()
        total = sum(counts)
        if total == 0:
            return like.clone()
        width = max(counts)
        padded = torch.zeros(width, dtype=like.dtype, device=like.device)
        padded[:m] = eps_rows
        gathered = self.all_gather_rows(padded).reshape(self.world, width)
        all_eps = torch.cat([gathered[r, : counts[r]] for r in range(self.world)])
        # The same shape, dtype, device and memory layout as the single process's tensor, so the
        # generator fills it identically (channels-last batches are drawn channels-last).
        layout = (torch.channels_last if like.dim() == 4 and not like.is_contiguous()
                  and like.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
        full = torch.empty((total, *like.shape[1:]), dtype=like.dtype, device=like.device,
                           memory_format=layout)
        drawn = norms.random_in_ball(full, all_eps, norm)
        start = sum(counts[: self.rank])
        return drawn[start : start + like.shape[0]]

    def average_gradients(self, model: nn.Module) -> None:
        """Replace every parameter's gradient by its mean over ranks (one all-reduce of the flattened
        gradients). A parameter without a gradient on a rank counts as zero there."""
        if not self.active:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat = self.all_reduce_sum(flat) / self.world
        offset = 0
        for p, g in zip(params, grads):
            mean = flat[offset : offset + g.numel()].view(g.shape)
            if p.grad is None:
                p.grad = mean.clone()
            else:
                p.grad.copy_(mean)  # keeps the gradient's memory layout (channels-last convolutions)
            offset += g.numel()

    def average_buffers(self, model: nn.Module) -> None:
        """Average floating-point buffers (batch norm's running statistics) over ranks, so every rank
        attacks with the same model. Integer buffers (batches tracked) are equal on every rank already."""
        if not self.active:
            return
        bufs = [b for b in model.buffers() if b.is_floating_point()]
        if not bufs:
            return
        flat = self.all_reduce_sum(torch.cat([b.reshape(-1) for b in bufs])) / self.world
        offset = 0
        for b in bufs:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()

    def broadcast_module(self, model: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (as DistributedDataParallel does at its start)."""
        if not self.active:
            return
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                buf = self._to(t.detach().clone())
                torch.distributed.broadcast(buf, src=0)
                t.copy_(buf.to(t.device))

    # -- evaluation ----------------------------------------------------------------------------

    def owns(self, batch: int) -> bool:
        """Batches are dealt round-robin: batch k belongs to rank k mod world."""
        return batch % self.world == self.rank


def single() -> Dist:
    """One process: every helper is a no-op."""
    return Dist()


def as_dist(dist: Dist | None) -> Dist:
    """``dist`` or :func:`single` (the library's functions take ``dist=None`` for one process)."""
    if dist is None:
        return single()
    if not isinstance(dist, Dist):
        raise ValueError(f"dist must be an mma_edu.distributed.Dist (from init_from_env()) or None, got {dist!r}")
    return dist


def init_from_env(device: str | torch.device = "auto") -> Dist:
    """Join the process group torchrun described in the environment; :func:`single` outside torchrun.

    The backend is NCCL where this rank computes on CUDA (``device``: "auto" with GPUs, "cuda"),
    else gloo. Each rank computes on cuda:LOCAL_RANK. A world of one process needs no group.
    """
    from .device import resolve_device

    if not launched_by_torchrun():
        return single()
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as err:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them): {err}") from None
    if world == 1:
        return single()
    dev = resolve_device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    comm = torch.device("cpu")
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} but this node has {torch.cuda.device_count()} GPU(s): start at most "
                             "that many processes per node (--nproc_per_node)")
        torch.cuda.set_device(local)
        comm = torch.device("cuda", local)
    owns = not torch.distributed.is_initialized()  # a caller (a script, a test) may have joined it already
    if owns:
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world,
                                             **({"device_id": comm} if backend == "nccl" else {}))
    return Dist(rank=rank, world=world, local_rank=local, backend=backend, device=comm, owns_group=owns)


def shutdown(dist: Dist) -> None:
    """Leave the process group if ``dist`` joined it (a no-op for one process)."""
    if dist.active and dist.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def convert_sync_batchnorm(model: nn.Module, dist: Dist, device: torch.device) -> nn.Module:
    """``--sync-bn``: every BatchNorm becomes a SyncBatchNorm, which normalizes with the statistics of
    the whole global batch (torch runs it on GPUs only)."""
    if dist.active and device.type != "cuda":
        raise ValueError("sync_bn needs CUDA devices: torch's SyncBatchNorm synchronizes on GPUs only "
                         f"(this run computes on {device}); leave --sync-bn off on CPU")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def has_sync_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
