"""What data-parallel training exchanges between processes on ``torch.distributed``.

When a process group with more than one process is initialised (by ``torchrun``, Spark's
``TorchDistributor``, Ray Train's ``TorchTrainer`` or ``skmissvae.dask.fit``), every
process trains the same model on its own shard of the rows: the initial weights come from
rank 0, the gradients of each step are averaged over the processes before clipping, every
process takes the same number of steps, and validation sums are added up, so that every
process stops at the same epoch with the same weights.

The objectives call the encoder and decoder directly and DeMissVAE takes two routed
backward passes per step, so the gradients are averaged by hand, in one flat all-reduce
per step, instead of by ``DistributedDataParallel``'s hooks. Without a process group every
function here does nothing, and training is exactly that of a single process.
"""

from __future__ import annotations

import functools
import operator

import torch
from torch import Tensor, nn

__all__ = [
    "average_gradients",
    "broadcast_module",
    "is_data_parallel",
    "max_across",
    "merge_objects",
    "rank",
    "sum_across",
    "world_size",
]


def world_size() -> int:
    """Processes in the default process group (1 without one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    import torch.distributed as dist

    return dist.get_rank() if world_size() > 1 else 0


def is_data_parallel() -> bool:
    """Whether training is shared by several processes."""
    return world_size() > 1


def _exchange_device() -> torch.device:
    # nccl exchanges tensors on the process's current CUDA device; gloo CPU tensors.
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_module(module: nn.Module) -> None:
    """Give every process rank 0's parameters and buffers (in place)."""
    if not is_data_parallel():
        return
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in module.state_dict().values():
            exchanged = tensor.to(_exchange_device())
            dist.broadcast(exchanged, src=0)
            tensor.copy_(exchanged)


def sum_across(values: Tensor) -> Tensor:
    """``values`` summed over the processes (float64, on the values' device)."""
    if not is_data_parallel():
        return values
    import torch.distributed as dist

    exchanged = values.detach().to(_exchange_device(), torch.float64).clone()
    dist.all_reduce(exchanged, op=dist.ReduceOp.SUM)
    return exchanged.to(values.device)


def max_across(value: int) -> int:
    """The largest ``value`` of any process."""
    if not is_data_parallel():
        return value
    import torch.distributed as dist

    exchanged = torch.tensor([value], dtype=torch.int64, device=_exchange_device())
    dist.all_reduce(exchanged, op=dist.ReduceOp.MAX)
    return int(exchanged.item())


def average_gradients(params: list[nn.Parameter], finite: bool, n_rows: int) -> bool:
    """Make the gradients of ``params`` those of the mean over every process's rows, in place.

    Each process holds the gradient of the mean loss of its ``n_rows`` rows (none when its
    shard has run out this epoch); they are weighted by their rows, so that the step equals
    one taken on the union of the batches. ``finite`` says whether this process's loss was
    finite. Returns whether every process's was: if one was not, the step is skipped
    everywhere, so that the processes keep identical weights.
    """
    if not is_data_parallel():
        return finite
    import torch.distributed as dist

    device, dtype = params[0].device, params[0].dtype
    weight = float(n_rows) if finite else 0.0
    flat = torch.cat([
        (p.grad * weight if weight and p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
    ] + [torch.tensor([weight, 0.0 if finite else 1.0], device=device, dtype=dtype)])
    exchanged = flat.to(_exchange_device())
    dist.all_reduce(exchanged, op=dist.ReduceOp.SUM)
    total_rows, n_non_finite = exchanged[-2].item(), exchanged[-1].item()
    if n_non_finite > 0 or total_rows == 0:
        return False
    averaged = (exchanged[:-2] / total_rows).to(device)
    offset = 0
    for p in params:
        grad = averaged[offset:offset + p.numel()].view_as(p)
        p.grad = grad.clone() if p.grad is None else p.grad.copy_(grad)
        offset += p.numel()
    return True


def merge_objects(value, merge=operator.add):
    """``value`` of every process combined with ``merge`` (in rank order)."""
    if not is_data_parallel():
        return value
    import torch.distributed as dist

    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return functools.reduce(merge, gathered)
