"""The epoch loop every deep model uses: shuffled length-bucketed batches, Adam,
gradient clipping, a validation P@k line per epoch, early stopping, best weights kept."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from xmc.models.batching import epoch_batches
from xmc.models.params import DeepParams

StepLoss = Callable[[np.ndarray], torch.Tensor]
Validate = Callable[[], Dict[str, float]]
Log = Callable[[str], None]


@dataclass
class TrainHistory:
    """What the loop did, for logs and tests."""

    epochs: List[Dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("-inf")
    seconds: float = 0.0


def _fmt_metrics(metrics: Dict[str, float]) -> str:
    return " ".join(f"{name} {value * 100:.2f}" for name, value in metrics.items())


def train_epochs(net: nn.Module, step_loss: StepLoss, lengths: np.ndarray, params: DeepParams,
                 validate: Validate, desc: str, log: Optional[Log] = print, progress: bool = True,
                 monitor: Optional[str] = None) -> TrainHistory:
    """Train ``net`` on minibatches; keep the weights of the epoch with the best ``monitor`` on validation
    (default: the mean of the validation metrics, so P@3 and P@5 break P@1's ties)."""
    from tqdm import tqdm

    rng = np.random.default_rng(params.seed)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=params.lr,
                                 weight_decay=params.weight_decay)
    history = TrainHistory()
    best_state = None
    stale = 0
    start = time.perf_counter()
    n_batches = -(-lengths.size // params.batch_size)
    for epoch in range(1, params.epochs + 1):
        net.train()
        total, steps = 0.0, 0
        with tqdm(total=n_batches, desc=f"{desc} epoch {epoch}", unit="batch", disable=not progress or None,
                  leave=False) as bar:
            for index in epoch_batches(lengths, params.batch_size, rng):
                optimizer.zero_grad(set_to_none=True)
                loss = step_loss(index)
                loss.backward()
                if params.grad_clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), params.grad_clip)
                optimizer.step()
                total += float(loss.detach())
                steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{total / steps:.4f}", refresh=False)
        net.eval()
        with torch.no_grad():
            metrics = validate()
        score = metrics.get(monitor, float("nan")) if monitor else float(np.mean(list(metrics.values())))
        record = {"epoch": epoch, "loss": total / max(steps, 1), **metrics}
        history.epochs.append(record)
        improved = score > history.best_score
        if improved:
            history.best_score, history.best_epoch = score, epoch
            best_state = copy.deepcopy(net.state_dict())
            stale = 0
        else:
            stale += 1
        if log is not None:
            mark = " *" if improved else ""
            log(f"{desc} epoch {epoch}: loss {record['loss']:.4f}  valid {_fmt_metrics(metrics)}  "
                f"({time.perf_counter() - start:.0f} s){mark}")
        if stale > params.patience:
            if log is not None:
                log(f"{desc}: early stop, best epoch {history.best_epoch} "
                    f"({monitor or 'mean validation P@k'} {history.best_score * 100:.2f})")
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    history.seconds = time.perf_counter() - start
    return history
