"""Several processes on torch.distributed: started by ``torchrun``, which sets RANK and WORLD_SIZE.

xmc uses no engine of its own: the process group is torch's (gloo on the CPU, nccl for
CUDA tensors), and this module only names the ranks and moves numpy arrays with the
collectives xmc needs. Arrays travel as tensors, never pickled. Outside torchrun
(WORLD_SIZE unset or 1) every function is a no-op and torch is not imported, so the
linear models keep running without torch.

    torchrun --nproc-per-node 2 -m xmc train --train train.txt --model-dir model
    torchrun --nproc-per-node 2 -m xmc predict --model-dir model --input test.txt --out pred.txt
"""
from __future__ import annotations

import atexit
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from xmc.tree.label_tree import LabelTree


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """Rank 0: the one process that writes models, checkpoints and prediction files."""
    return rank() == 0


def init(backend: Optional[str] = None) -> None:
    """Join torchrun's process group once (gloo unless ``backend`` says otherwise)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend or "gloo")
        # A process that exits with its group alive can leave gloo's worker threads running while
        # the interpreter is torn down, and aborts with "terminate called without an active
        # exception" (pytorch/pytorch#190489): the group goes first.
        atexit.register(shutdown)


def shutdown() -> None:
    """Leave the process group (registered at exit by ``init``; safe to call more than once)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        init()
        dist.barrier()


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Element-wise sum over the ranks (float64 on the wire)."""
    values = np.asarray(values, dtype=np.float64)
    if not is_distributed():
        return values
    import torch
    import torch.distributed as dist

    init()
    t = torch.from_numpy(values.copy())
    dist.all_reduce(t)
    return t.numpy()


def broadcast_arrays(arrays: Optional[Dict[str, np.ndarray]], names: List[str], src: int = 0) -> Dict[str, np.ndarray]:
    """Rank ``src``'s ``arrays`` (by ``names``, the same on every rank; up to 6 dimensions) on every rank."""
    if not is_distributed():
        assert arrays is not None
        return arrays
    import torch
    import torch.distributed as dist

    init()
    out = {}
    for name in names:
        mine = rank() == src
        head = torch.zeros(8, dtype=torch.int64)  # dtype, ndim, shape
        if mine:
            a = np.ascontiguousarray(arrays[name])
            if a.ndim > 6:
                raise ValueError(f"broadcast_arrays: {name} has {a.ndim} dimensions; at most 6")
            head[0], head[1] = _DTYPES.index(a.dtype.str), a.ndim
            head[2:2 + a.ndim] = torch.tensor(a.shape, dtype=torch.int64)
        dist.broadcast(head, src)
        dtype, shape = np.dtype(_DTYPES[int(head[0])]), tuple(int(x) for x in head[2:2 + int(head[1])])
        t = torch.from_numpy(a.reshape(-1).copy()) if mine else torch.empty(int(np.prod(shape)),
                                                                            dtype=_torch_dtype(dtype))
        dist.broadcast(t, src)
        out[name] = t.numpy().astype(dtype, copy=False).reshape(shape)
    return out


def array_from_main(build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()`` run on rank 0 only, its array on every rank (for results that are not bit-reproducible
    across processes: multi-threaded word2vec, k-means with parallel reductions)."""
    if not is_distributed():
        return build()
    return broadcast_arrays({"a": build()} if is_main() else None, ["a"])["a"]


def tree_from_main(build: Callable[[], "LabelTree"]) -> "LabelTree":
    """``build()`` run on rank 0 only, its label tree on every rank."""
    if not is_distributed():
        return build()
    tree = build() if is_main() else None
    depth = int(broadcast_arrays({"depth": np.array([tree.depth])} if tree else None, ["depth"])["depth"][0])
    names = [f"layer_{t}" for t in range(depth)] + ["label_order"]
    arrays = None if tree is None else {**{f"layer_{t}": a for t, a in enumerate(tree.layer_indptr)},
                                        "label_order": tree.label_order}
    arrays = broadcast_arrays(arrays, names)
    return LabelTree([arrays[n] for n in names[:-1]], arrays["label_order"])


def gather_arrays(arrays: Dict[str, np.ndarray], dst: int = 0) -> Optional[List[Dict[str, np.ndarray]]]:
    """Every rank's 1-d ``arrays`` (same names and dtypes on all ranks, any lengths), in rank
    order, on rank ``dst``; None on the other ranks."""
    if not is_distributed():
        return [arrays]
    import torch
    import torch.distributed as dist

    init()
    n = world_size()
    gathered: List[Dict[str, np.ndarray]] = [{} for _ in range(n)]
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name]).reshape(-1)
        size = torch.tensor([a.shape[0]], dtype=torch.int64)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(n)]
        dist.all_gather(sizes, size)
        longest = max(int(s) for s in sizes)
        padded = torch.zeros(longest, dtype=_torch_dtype(a.dtype))
        padded[:a.shape[0]] = torch.from_numpy(a)
        parts = [torch.empty_like(padded) for _ in range(n)] if rank() == dst else None
        dist.gather(padded, parts, dst=dst)
        if rank() == dst:
            for r in range(n):
                gathered[r][name] = parts[r][:int(sizes[r])].numpy().astype(a.dtype, copy=False)
    return gathered if rank() == dst else None


def share_of_columns(cost: np.ndarray) -> Tuple[int, int]:
    """This rank's contiguous range [begin, end) of columns whose ``cost`` adds up to about a rank's share;
    (0, -1), every column, outside torchrun. Each rank trains its range; :func:`gather_columns` joins them."""
    ranks = world_size()
    if ranks == 1:
        return 0, -1
    total = np.cumsum(np.asarray(cost, dtype=np.float64))
    bounds = np.searchsorted(total, total[-1] * np.arange(ranks + 1) / ranks, side="right") if total.size else \
        np.zeros(ranks + 1, dtype=np.int64)
    bounds[0], bounds[-1] = 0, total.size
    r = rank()
    return int(bounds[r]), int(bounds[r + 1])


def gather_columns(W):
    """Under torchrun: the whole CSC matrix on rank 0, from each rank's columns of
    :func:`share_of_columns` (the other ranks keep theirs); ``W`` itself outside torchrun."""
    if not is_distributed():
        return W
    import scipy.sparse as sp

    parts = gather_arrays({"counts": np.diff(W.indptr).astype(np.int64),
                           "indices": W.indices.astype(np.int32), "data": W.data.astype(np.float32)})
    if parts is None:
        return W
    # Ranks own contiguous column ranges in rank order, so their entries concatenate in column order.
    counts = np.sum([part["counts"] for part in parts], axis=0)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.concatenate([part["indices"] for part in parts])
    data = np.concatenate([part["data"] for part in parts])
    return sp.csc_matrix((data, indices, indptr), shape=W.shape)


_DTYPES = ["<i4", "<i8", "<f4", "<f8", "|b1", "|u1"]


def _torch_dtype(dtype: np.dtype):
    import torch

    return {"<i4": torch.int32, "<i8": torch.int64, "<f4": torch.float32, "<f8": torch.float64,
            "|b1": torch.bool, "|u1": torch.uint8}[np.dtype(dtype).str]
