"""The epoch loop every deep model uses: shuffled length-bucketed batches, Adam,
gradient clipping, a validation P@k line per epoch, early stopping, best weights kept.

The loop can stop at any step and continue bit for bit: :class:`LoopState`
holds its position (epoch, step, the batch-order generator's state at the start
of the epoch, the running loss, the best score so far) and a
:class:`LoopCheckpoint` (see :mod:`xmc.models.checkpoint`) saves it with the
weights, the optimiser and the RNGs, and hands it back on resume.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

import numpy as np
import torch
from torch import nn

from xmc.models.batching import epoch_batches
from xmc.models.params import DeepParams
from xmc.utils.checkpoint import TrainingInterrupted  # noqa: F401  (raised by the models, caught by the CLI)

StepLoss = Callable[[np.ndarray], torch.Tensor]
Validate = Callable[[], Dict[str, float]]
Log = Callable[[str], None]
State = Dict[str, torch.Tensor]


@dataclass
class TrainHistory:
    """What the loop did, for logs and tests."""

    epochs: List[Dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("-inf")
    seconds: float = 0.0


@dataclass
class LoopState:
    """Where the epoch loop stands; JSON-able (the batch generator's state is a dict of ints)."""

    epoch: int = 1  # the epoch in progress (or next), 1-based
    step: int = 0  # batches of ``epoch`` already trained
    global_step: int = 0
    epoch_loss: float = 0.0  # sum of this epoch's batch losses so far
    batch_rng: Optional[Dict[str, Any]] = None  # batch-order generator's state at the start of ``epoch``
    best_score: Optional[float] = None  # None: no epoch finished yet (JSON has no -inf)
    best_epoch: int = -1
    stale: int = 0
    finished: bool = False  # the last epoch ran (or early stopping fired): only the best weights remain to load
    seconds: float = 0.0
    history: List[Dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "LoopState":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class LoopCheckpoint(Protocol):
    """What ``train_epochs`` needs from a checkpointer (implemented in xmc.models.checkpoint)."""

    every: int

    def resume_point(self, optimizer: torch.optim.Optimizer) -> Optional[Tuple[LoopState, Optional[State]]]:
        """The saved loop state and best weights, after loading the net and ``optimizer``; None: start fresh."""

    def save(self, loop: LoopState, optimizer: torch.optim.Optimizer, best_state: Optional[State]) -> None:
        ...

    def interrupted(self) -> bool:
        ...

    @property
    def path(self) -> Path:
        ...


def _fmt_metrics(metrics: Dict[str, float]) -> str:
    return " ".join(f"{name} {value * 100:.2f}" for name, value in metrics.items())


def train_epochs(net: nn.Module, step_loss: StepLoss, lengths: np.ndarray, params: DeepParams,
                 validate: Validate, desc: str, log: Optional[Log] = print, progress: bool = True,
                 monitor: Optional[str] = None, checkpoint: Optional[LoopCheckpoint] = None) -> TrainHistory:
    """Train ``net`` on minibatches; keep the weights of the epoch with the best ``monitor`` on validation
    (default: the mean of the validation metrics, so P@3 and P@5 break P@1's ties).

    With ``checkpoint``, the loop is saved every ``checkpoint.every`` steps (0: never mid-epoch) and at every
    epoch end, continues from the saved step when there is one, and on ``checkpoint.interrupted()`` saves
    and raises :class:`TrainingInterrupted`.
    """
    from tqdm import tqdm

    rng = np.random.default_rng(params.seed)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=params.lr,
                                 weight_decay=params.weight_decay)
    loop, best_state = LoopState(), None
    resumed = checkpoint.resume_point(optimizer) if checkpoint is not None else None
    if resumed is not None:
        loop, best_state = resumed
    start = time.perf_counter() - loop.seconds
    n_batches = -(-lengths.size // params.batch_size)
    every = checkpoint.every if checkpoint is not None else 0

    def save() -> None:
        loop.seconds = time.perf_counter() - start
        checkpoint.save(loop, optimizer, best_state)

    while not loop.finished:
        epoch = loop.epoch
        if loop.batch_rng is None:
            loop.batch_rng = copy.deepcopy(rng.bit_generator.state)
        # The whole epoch's order is drawn up front, so the state at the epoch start regenerates it exactly.
        rng.bit_generator.state = copy.deepcopy(loop.batch_rng)
        batches = list(epoch_batches(lengths, params.batch_size, rng))
        net.train()
        with tqdm(total=n_batches, initial=loop.step, desc=f"{desc} epoch {epoch}", unit="batch",
                  disable=not progress or None, leave=False) as bar:
            for index in batches[loop.step:]:
                optimizer.zero_grad(set_to_none=True)
                loss = step_loss(index)
                loss.backward()
                if params.grad_clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), params.grad_clip)
                optimizer.step()
                loop.epoch_loss += float(loss.detach())
                loop.step += 1
                loop.global_step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loop.epoch_loss / loop.step:.4f}", refresh=False)
                if checkpoint is not None:
                    if checkpoint.interrupted():
                        save()
                        raise TrainingInterrupted(checkpoint.path)
                    if every > 0 and loop.global_step % every == 0 and loop.step < len(batches):
                        save()  # the epoch end saves the last step anyway
        net.eval()
        with torch.no_grad():
            metrics = validate()
        score = metrics.get(monitor, float("nan")) if monitor else float(np.mean(list(metrics.values())))
        record = {"epoch": epoch, "loss": loop.epoch_loss / max(loop.step, 1), **metrics}
        loop.history.append(record)
        improved = score > (loop.best_score if loop.best_score is not None else float("-inf"))
        if improved:
            loop.best_score, loop.best_epoch = float(score), epoch
            best_state = copy.deepcopy(net.state_dict())
            loop.stale = 0
        else:
            loop.stale += 1
        if log is not None:
            mark = " *" if improved else ""
            log(f"{desc} epoch {epoch}: loss {record['loss']:.4f}  valid {_fmt_metrics(metrics)}  "
                f"({time.perf_counter() - start:.0f} s){mark}")
        early = loop.stale > params.patience
        if early and log is not None:
            log(f"{desc}: early stop, best epoch {loop.best_epoch} "
                f"({monitor or 'mean validation P@k'} {loop.best_score * 100:.2f})")
        loop.finished = early or epoch >= params.epochs
        loop.epoch, loop.step, loop.epoch_loss, loop.batch_rng = epoch + 1, 0, 0.0, None
        if checkpoint is not None:
            loop.batch_rng = copy.deepcopy(rng.bit_generator.state)
            save()
            if checkpoint.interrupted():
                raise TrainingInterrupted(checkpoint.path)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    history = TrainHistory(epochs=list(loop.history), best_epoch=loop.best_epoch,
                           best_score=loop.best_score if loop.best_score is not None else float("-inf"))
    history.seconds = time.perf_counter() - start
    return history
