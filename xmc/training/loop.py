"""The epoch loop every deep model uses: shuffled length-bucketed batches, Adam (lazy on the word embedding's
sparse gradients, :mod:`xmc.training.optim`),
gradient clipping, a validation P@k line per epoch, early stopping, best weights kept.

Stochastic weight averaging (Izmailov et al., 2018; AttentionXML's own training
uses it): from epoch ``params.swa_start`` on, the loop keeps the running mean of
the epoch-end weights and validates it beside the current weights. Whichever of
the two scores best on validation is kept, so averaging never costs accuracy
on the validation split. While the current weights still beat the mean, the
mean restarts from them, so it holds only epochs of the plateau and the start
epoch needs no tuning.

The loop can stop at any step and continue bit for bit: :class:`LoopState`
holds its position (epoch, step, the batch-order generator's state at the start
of the epoch, the running loss, the best score so far) and a
:class:`LoopCheckpoint` (see :mod:`xmc.training.checkpoint`) saves it with the
weights, the optimiser and the RNGs, and hands it back on resume.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Tuple

import numpy as np
import torch
from torch import nn

from xmc.training import distributed
from xmc.training.batching import epoch_batches
# TrainingInterrupted: raised by the models, caught by the CLI
from xmc.training.checkpoint import LoopState, TrainingInterrupted  # noqa: F401
from xmc.training.optim import LazyAdam, clip_grad_norm
from xmc.training.params import TrainingParams
from xmc.utils.progress import progress as show_progress

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



class LoopCheckpoint(Protocol):
    """What ``train_epochs`` needs from a checkpointer (implemented in xmc.training.checkpoint)."""

    every: int

    def resume_point(self, optimizer: torch.optim.Optimizer) -> Optional[Tuple[LoopState, Dict[str, State]]]:
        """The saved loop state and weight sets ("best", "average"), after loading the net and ``optimizer``;
        None: start fresh."""

    def save(self, loop: LoopState, optimizer: torch.optim.Optimizer, weights: Dict[str, State]) -> None:
        ...

    def interrupted(self) -> bool:
        ...

    @property
    def path(self) -> Path:
        ...


def _fmt_metrics(metrics: Dict[str, float]) -> str:
    return " ".join(f"{name} {value * 100:.2f}" for name, value in metrics.items())


def _snapshot(net: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _add_to_average(average: Optional[State], net: nn.Module, count: int) -> State:
    """The running mean of ``count`` snapshots updated with ``net``'s weights (float tensors only:
    integer buffers, if any, take the latest value)."""
    if average is None:
        return _snapshot(net)
    for name, value in net.state_dict().items():
        if value.is_floating_point():
            average[name].add_(value.detach() - average[name], alpha=1.0 / (count + 1))
        else:
            average[name].copy_(value)
    return average


def _score(metrics: Dict[str, float], monitor: Optional[str]) -> float:
    return metrics.get(monitor, float("nan")) if monitor else float(np.mean(list(metrics.values())))


def _validate_with(net: nn.Module, weights: State, validate: Validate) -> Dict[str, float]:
    """Validation metrics of ``weights``; ``net`` keeps its own weights afterwards."""
    current = _snapshot(net)
    net.load_state_dict(weights)
    try:
        with torch.no_grad():
            return validate()
    finally:
        net.load_state_dict(current)


def _validated_on_main(validate: Validate) -> Validate:
    """Under torchrun: rank 0 validates and sends the metrics to the others (as JSON, never pickled), so
    the ranks keep the same best epoch and stop together without each scoring the whole validation set."""
    import json

    def on_main() -> Dict[str, float]:
        sent = None
        if distributed.is_main():
            sent = {"m": np.frombuffer(json.dumps(validate()).encode(), dtype=np.uint8)}
        return json.loads(distributed.broadcast_arrays(sent, ["m"])["m"].tobytes().decode())
    return on_main


class _Steps(nn.Module):
    """A model's step loss as a module forward, so DistributedDataParallel can wrap it: DDP syncs the
    gradients of ``net``'s parameters when the loss its forward returned goes backward."""

    def __init__(self, net: nn.Module, step_loss: StepLoss) -> None:
        super().__init__()
        self.net, self.step_loss = net, step_loss

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.step_loss(index.numpy())


def distributed_steps(net: nn.Module, step_loss: StepLoss) -> StepLoss:
    """Under torchrun: each rank computes the loss of its share of every global batch (the same batches
    as one process: the batch order comes from the same seed on every rank) and DDP averages the gradients.
    In one process ``step_loss`` itself."""
    from torch.nn.parallel import DistributedDataParallel

    if not distributed.is_distributed():
        return step_loss
    distributed.init()
    ranks, me = distributed.world_size(), distributed.rank()
    for module in net.modules():
        if isinstance(module, nn.Embedding):
            module.sparse = False  # NCCL all-reduces dense gradients only
    # find_unused_parameters: a step may leave some parameters out (levels, the generator's head).
    ddp = DistributedDataParallel(_Steps(net, step_loss), find_unused_parameters=True)

    def step(index: np.ndarray) -> torch.Tensor:
        share = index[me::ranks] if index.size >= ranks else index[me % index.size:][:1]
        return ddp(torch.from_numpy(np.ascontiguousarray(share)))
    return step


# A first epoch whose validation P@1 is within this of the label prior's has learned nothing of the text.
PRIOR_MARGIN = 0.005


def prior_warning(desc: str, epoch: int, metrics: Dict[str, float], prior: Optional[Dict[str, float]],
                  params: TrainingParams) -> Optional[str]:
    """A warning when the first epoch's validation P@1 is no better than the label prior's, else None."""
    if epoch != 1 or not prior or "P@1" not in metrics or "P@1" not in prior:
        return None
    if metrics["P@1"] > prior["P@1"] + PRIOR_MARGIN:
        return None
    return (f"warning: {desc}: validation P@1 {metrics['P@1'] * 100:.2f} after epoch 1 is no better than always "
            f"predicting the most frequent training labels ({prior['P@1'] * 100:.2f}): the network has learned "
            f"only the label prior so far. Try a larger training.lr (now {params.lr:g}), more epochs, a shorter "
            f"text.max_len, or --model linear.")


def train_epochs(net: nn.Module, step_loss: StepLoss, lengths: np.ndarray, params: TrainingParams,
                 validate: Validate, desc: str, log: Optional[Log] = print, progress: bool = True,
                 monitor: Optional[str] = None, checkpoint: Optional[LoopCheckpoint] = None,
                 prior: Optional[Dict[str, float]] = None) -> TrainHistory:
    """Train ``net`` on minibatches; keep the weights of the epoch with the best ``monitor`` on validation
    (default: the mean of the validation metrics, so P@3 and P@5 break P@1's ties).

    ``prior``: the validation metrics of always predicting the most frequent training labels. A first
    epoch that does no better is logged as a warning with what to try (see :func:`prior_warning`).

    With ``checkpoint``, the loop is saved every ``checkpoint.every`` steps (0: never mid-epoch) and at every
    epoch end, continues from the saved step when there is one, and on ``checkpoint.interrupted()`` saves
    and raises :class:`TrainingInterrupted`.
    """
    if distributed.is_distributed():
        step_loss = distributed_steps(net, step_loss)
        validate = _validated_on_main(validate)
    rng = np.random.default_rng(params.seed)
    optimizer = LazyAdam([p for p in net.parameters() if p.requires_grad], lr=params.lr,
                         weight_decay=params.weight_decay)
    loop, weights = LoopState(), {}
    resumed = checkpoint.resume_point(optimizer) if checkpoint is not None else None
    if resumed is not None:
        loop, weights = resumed
    start = time.perf_counter() - loop.seconds
    n_batches = -(-lengths.size // params.batch_size)
    max_epochs = params.max_epochs(int(lengths.sum()))
    if params.epochs is None and log is not None and loop.epoch == 1:
        log(f"{desc}: at most {max_epochs} epochs for {int(lengths.sum()):,} training tokens (training.epochs null)")
    every = checkpoint.every if checkpoint is not None else 0

    def save() -> None:
        loop.seconds = time.perf_counter() - start
        checkpoint.save(loop, optimizer, weights)

    while not loop.finished:
        epoch = loop.epoch
        if loop.batch_rng is None:
            loop.batch_rng = copy.deepcopy(rng.bit_generator.state)
        # The whole epoch's order is drawn up front, so the state at the epoch start regenerates it exactly.
        rng.bit_generator.state = copy.deepcopy(loop.batch_rng)
        batches = list(epoch_batches(lengths, params.batch_size, rng))
        net.train()
        epoch_start, first_step = time.perf_counter(), loop.step
        with show_progress(f"{desc} epoch {epoch}", total=n_batches, unit="batch", initial=loop.step,
                           enabled=progress) as bar:
            for index in batches[loop.step:]:
                optimizer.zero_grad(set_to_none=True)
                loss = step_loss(index)
                loss.backward()
                if params.grad_clip > 0:
                    clip_grad_norm(net.parameters(), params.grad_clip)
                optimizer.step()
                loop.epoch_loss += float(loss.detach())
                loop.step += 1
                loop.global_step += 1
                bar.set_postfix(f"loss {loop.epoch_loss / loop.step:.4f}")
                bar.update(1)
                if checkpoint is not None:
                    if checkpoint.interrupted():
                        save()
                        raise TrainingInterrupted(checkpoint.path)
                    if every > 0 and loop.global_step % every == 0 and loop.step < len(batches):
                        save()  # the epoch end saves the last step anyway
        net.eval()
        # (an epoch resumed mid-way counts its batches since the resume)
        train_s, valid_start = time.perf_counter() - epoch_start, time.perf_counter()
        with torch.no_grad(), show_progress(f"{desc} epoch {epoch} validation", enabled=progress):
            metrics = validate()
        score = _score(metrics, monitor)
        docs_per_s = sum(len(index) for index in batches[first_step:]) / max(train_s, 1e-9)
        record = {"epoch": epoch, "loss": loop.epoch_loss / max(loop.step, 1), **metrics,
                  "train_s": train_s, "valid_s": time.perf_counter() - valid_start, "docs_per_s": docs_per_s}
        average_metrics, average_count, average_score = None, 0, float("-inf")
        if params.swa_start > 0 and epoch >= params.swa_start:
            weights["average"] = _add_to_average(weights.get("average"), net, loop.averaged)
            loop.averaged += 1
            if loop.averaged > 1:  # an average of one snapshot is this epoch's weights
                average_metrics, average_count = _validate_with(net, weights["average"], validate), loop.averaged
                record.update({f"avg {k}": v for k, v in average_metrics.items()})
                average_score = _score(average_metrics, monitor)
                if score > average_score:
                    # Still improving fast: older snapshots drag the mean down, so it restarts from here.
                    weights["average"], loop.averaged = _snapshot(net), 1
        loop.history.append(record)
        is_average = average_score > score
        score = max(score, average_score)
        improved = score > (loop.best_score if loop.best_score is not None else float("-inf"))
        if improved:
            loop.best_score, loop.best_epoch, loop.best_is_average = float(score), epoch, is_average
            weights["best"] = {k: v.clone() for k, v in weights["average"].items()} if is_average else _snapshot(net)
            loop.stale = 0
        else:
            loop.stale += 1
        if log is not None:
            mark = (" * (average)" if is_average else " *") if improved else ""
            averaged = ""
            if average_metrics is not None:
                averaged = f"  average of {average_count} epochs {_fmt_metrics(average_metrics)}"
            log(f"{desc} epoch {epoch}: loss {record['loss']:.4f}  valid {_fmt_metrics(metrics)}{averaged}  "
                f"(epoch {train_s:.1f} s at {docs_per_s:.0f} docs/s, validation {record['valid_s']:.1f} s; "
                f"{time.perf_counter() - start:.0f} s in all){mark}")
        warning = prior_warning(desc, epoch, metrics, prior, params)
        if warning and log is not None:
            log(warning)
        early = loop.stale > params.patience
        if early and log is not None:
            log(f"{desc}: early stop, best epoch {loop.best_epoch}{' (average)' if loop.best_is_average else ''} "
                f"({monitor or 'mean validation P@k'} {loop.best_score * 100:.2f})")
        loop.finished = early or epoch >= max_epochs
        loop.epoch, loop.step, loop.epoch_loss, loop.batch_rng = epoch + 1, 0, 0.0, None
        if checkpoint is not None:
            loop.batch_rng = copy.deepcopy(rng.bit_generator.state)
            save()
            if checkpoint.interrupted():
                raise TrainingInterrupted(checkpoint.path)
    if "best" in weights:
        net.load_state_dict(weights["best"])
    net.eval()
    history = TrainHistory(epochs=list(loop.history), best_epoch=loop.best_epoch,
                           best_score=loop.best_score if loop.best_score is not None else float("-inf"))
    history.seconds = time.perf_counter() - start
    return history
