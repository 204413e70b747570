"""The deep models' epoch loop: best-epoch selection, early stopping and weight averaging."""
from __future__ import annotations

from typing import List

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xmc.training.params import TrainingParams  # noqa: E402
from xmc.training.loop import train_epochs  # noqa: E402


def noisy_scalar_fit(swa_start: int, epochs: int = 12, seed: int = 3):
    """One weight pulled towards a different random target every step (mean 0): Adam with a large step
    size keeps it bouncing around 0 from epoch to epoch, which is where averaging epoch-end weights helps.
    Validation scores -|w|, so the kept weights are the ones nearest the true optimum 0."""
    torch.manual_seed(seed)
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(3.0)
    targets = np.random.default_rng(seed).normal(0.0, 1.0, size=10_000)
    cursor = iter(range(10_000))
    epoch_end_weights: List[float] = []

    def step(rows: np.ndarray) -> "torch.Tensor":
        t = float(targets[next(cursor)])
        return (net.weight.squeeze() - t) ** 2

    def validate():
        w = float(net.weight.detach().squeeze())
        epoch_end_weights.append(w)
        return {"P@1": -abs(w)}

    params = TrainingParams(epochs=epochs, batch_size=10, lr=0.3, patience=epochs, swa_start=swa_start, grad_clip=0.0)
    lines: List[str] = []
    history = train_epochs(net, step, np.ones(100, dtype=np.int64), params, validate, desc="toy",
                           log=lines.append, progress=False)
    return float(net.weight.detach().squeeze()), history, epoch_end_weights, lines


def test_without_averaging_the_best_epoch_is_kept():
    final, history, seen, lines = noisy_scalar_fit(swa_start=0)
    assert len(seen) == 12  # one validation per epoch, no average to validate
    assert final == pytest.approx(min(seen, key=abs))
    assert history.best_score == pytest.approx(-abs(final))
    assert not any("average" in line for line in lines)
    # Each epoch says where its time went: the batches (and their documents per second), then validation.
    assert all(r["train_s"] > 0 and r["valid_s"] >= 0 and r["docs_per_s"] > 0 for r in history.epochs)
    assert all(" docs/s, validation " in line for line in lines if " epoch " in line)


def test_the_weight_average_is_kept_when_it_validates_better():
    plain, _, raw_weights, _ = noisy_scalar_fit(swa_start=0)
    averaged, history, seen, lines = noisy_scalar_fit(swa_start=4)
    # Same seed, same steps: the current weights follow the same path with or without averaging.
    assert seen[:4] == raw_weights[:4]
    assert abs(averaged) < abs(plain), "the average of bouncing epochs should sit nearer the optimum"
    assert any(line.endswith("* (average)") for line in lines)
    assert history.best_score == pytest.approx(-abs(averaged))
    # The kept weights are a mean of consecutive epoch-end weights (those validated as the current ones).
    means = [np.mean(raw_weights[i:j]) for i in range(len(raw_weights)) for j in range(i + 2, len(raw_weights) + 1)]
    assert min(abs(m - averaged) for m in means) < 1e-6


def test_swa_start_is_checked():
    with pytest.raises(ValueError, match="swa_start: expected an integer >= 0"):
        TrainingParams(swa_start=-1)


def test_a_first_epoch_no_better_than_the_label_prior_is_flagged():
    from xmc.training.loop import prior_warning

    params = TrainingParams(lr=1e-5)
    prior = {"P@1": 0.30, "P@5": 0.20}
    warning = prior_warning("toy", 1, {"P@1": 0.302, "P@5": 0.2}, prior, params)
    assert "no better than always predicting the most frequent training labels (30.00)" in warning
    assert "training.lr (now 1e-05)" in warning
    assert prior_warning("toy", 1, {"P@1": 0.40}, prior, params) is None  # learned something
    assert prior_warning("toy", 2, {"P@1": 0.30}, prior, params) is None  # said once, after epoch 1
    assert prior_warning("toy", 1, {"micro-F1": 0.1}, prior, params) is None  # no P@1 to compare
