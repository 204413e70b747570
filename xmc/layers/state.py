"""A network's weights as numpy arrays and back: how models and checkpoints store them (never pickle)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch

from xmc.utils.modeldir import ModelFormatError

WEIGHTS = "weights.npz"
# Largest weight magnitude a model may hold. Trained weights stay far below (|w| < 100 in every model trained
# here); float32 arithmetic on values near 1e30 overflows.
MAX_ABS_WEIGHT = 1e4


def state_arrays(prefix: str, module: torch.nn.Module) -> Dict[str, np.ndarray]:
    return {f"{prefix}.{name}": t.detach().cpu().numpy() for name, t in module.state_dict().items()}


def load_state(prefix: str, module: torch.nn.Module, arrays: Dict[str, np.ndarray], directory: Path) -> None:
    """Copy ``prefix.*`` arrays into ``module``; a missing or misshapen array is a damaged model.

    On a meta-device ``module`` (DeepModel.load's dry run) only names and shapes are checked: the
    scan of the values waits for the real pass, so it runs once per load.
    """
    dry_run = any(p.is_meta for p in module.parameters())
    state = {}
    for name, current in module.state_dict().items():
        key = f"{prefix}.{name}"
        if key not in arrays:
            raise ModelFormatError(f"{directory / WEIGHTS}: array {key!r} is missing")
        value = arrays[key]
        if tuple(value.shape) != tuple(current.shape):
            raise ModelFormatError(f"{directory / WEIGHTS}: array {key!r} has shape {value.shape}, "
                                   f"expected {tuple(current.shape)}")
        if dry_run:
            continue
        if value.dtype.kind not in "fiub" or (value.dtype.kind == "f" and not np.all(np.isfinite(value))):
            # load_state_dict would cast or reject these; NaN weights would give NaN scores.
            found = f"{value.dtype}" + (" with non-finite values" if value.dtype.kind == "f" else "")
            raise ModelFormatError(f"{directory / WEIGHTS}: array {key!r} must hold finite real numbers, "
                                   f"found {found}")
        if value.dtype.kind == "f" and value.size and float(np.abs(value).max()) > MAX_ABS_WEIGHT:
            # Finite, but a trained network never holds it: -1e30 in an attention projection overflowed
            # float32 arithmetic into NaN scores (found by the loader fuzzer).
            raise ModelFormatError(f"{directory / WEIGHTS}: array {key!r} holds a value of magnitude "
                                   f"{float(np.abs(value).max()):.3g}, above {MAX_ABS_WEIGHT:g}; trained weights "
                                   f"never come near it: the file is damaged")
        state[name] = torch.from_numpy(np.ascontiguousarray(value))
    if not dry_run:
        module.load_state_dict(state)
