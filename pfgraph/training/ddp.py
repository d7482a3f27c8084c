"""Multi-process data-parallel training via ``torchrun`` (gloo on CPU, nccl on CUDA).

``torchrun --standalone --nproc_per_node 2 -m pfgraph.cli train ...`` runs the same entry
point in every process; :func:`init` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``), sets up the process group, and every other helper here is a no-op in a
single process. Rank 0 alone writes files; all ranks take the same decisions (learning rate,
early stop) from all-reduced losses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pfgraph.errors import PfgraphError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        """True in a multi-process job."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when torchrun (or an equivalent launcher) started this process as part of a job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto") -> DistInfo:
    """Join the process group when started by torchrun; a single-process DistInfo otherwise."""
    if not launched_by_torchrun():
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    local = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        if not torch.cuda.is_available():
            raise PfgraphError("--device cuda: no CUDA device is available")
        torch.cuda.set_device(local)
    try:
        dist.init_process_group(backend=backend)
    except Exception as exc:  # a launcher problem, reported in one line
        raise PfgraphError(f"cannot join the torchrun process group ({type(exc).__name__}: {exc})") from None
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, backend)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def all_sum(info: DistInfo, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def agree(info: DistInfo, ok: bool, device: torch.device) -> bool:
    """True only if ``ok`` on every process (so all raise, or none)."""
    if not info.enabled:
        return ok
    return all_sum(info, [0.0 if ok else 1.0], device)[0] == 0.0


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
