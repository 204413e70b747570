"""How the deep models' epoch loop trains: optimiser, batches, epochs, early stopping, device."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from xmc.params import MAX_THREADS, Params, check, check_int, param


@dataclass
class TrainingParams(Params):
    """The epoch loop's settings, shared by every deep model (AttentionXML's: Adam at 1e-3, batch 40)."""

    lr: float = param(1e-3, "Adam learning rate")
    weight_decay: float = param(0.0, "Adam weight decay")
    batch_size: int = param(40, "documents per step")
    epochs: Optional[int] = param(None, "most epochs (per tree level for AttentionXML); null: from the corpus, "
                                        "20 up to 2 million training tokens (after the max_len cut), fewer "
                                        "above (about 40 million tokens in all), at least 2")
    patience: int = param(4, "epochs without a better validation P@1 before stopping (0: never stop early)")
    valid_fraction: float = param(0.1, "share of the training data held out when no validation set is given")
    grad_clip: float = param(5.0, "gradient norm clipped to this (0: no clipping)")
    swa_start: int = param(2, "epoch from which the running average of the epoch-end weights is validated "
                              "and kept when better (0: off)")
    seed: int = param(0, "seed of the initial weights, the batch order and the validation split")
    threads: int = param(0, "torch intra-op threads (0: torch's default)")
    device: str = param("auto", "auto (the GPU when torch sees one), cpu, cuda or cuda:N")
    eval_batch_size: int = param(128, "documents per batch at validation and prediction")
    checkpoint_every: int = param(0, "steps between checkpoints (0: at epoch ends only)")

    def validate(self) -> None:
        check(self.lr > 0, "lr", "a positive number", self.lr)
        check(self.weight_decay >= 0, "weight_decay", "a number >= 0", self.weight_decay)
        for name in ("batch_size", "eval_batch_size"):
            check_int(getattr(self, name), name)
        if self.epochs is not None:
            check_int(self.epochs, "epochs")
        for name in ("patience", "swa_start", "checkpoint_every", "seed"):
            check_int(getattr(self, name), name, low=0)
        check(0.0 < self.valid_fraction < 1.0, "valid_fraction", "a number in (0, 1)", self.valid_fraction)
        check(self.grad_clip >= 0, "grad_clip", "a number >= 0", self.grad_clip)
        check_int(self.threads, "threads", low=0, high=MAX_THREADS)
        check(self.device in ("auto", "cpu") or self.device.startswith("cuda"), "device",
              "'auto', 'cpu' or 'cuda[:N]'", self.device)

    def max_epochs(self, tokens_per_epoch: int) -> int:
        """``epochs``, or when it is null the count for a corpus of ``tokens_per_epoch`` training tokens.

        An epoch costs time in proportion to its tokens, and a large corpus needs fewer passes: 20 (the
        AttentionXML paper's order for its small sets) as long as they read at most ``TOKEN_BUDGET`` tokens,
        fewer for larger corpora (EURLEX57K's 45,000 documents cut at 500 tokens: 16 million tokens, 3 epochs),
        never under 2."""
        if self.epochs is not None:
            return self.epochs
        return int(min(MOST_AUTO_EPOCHS, max(LEAST_AUTO_EPOCHS, math.ceil(TOKEN_BUDGET / max(tokens_per_epoch, 1)))))


TOKEN_BUDGET = 40_000_000
MOST_AUTO_EPOCHS, LEAST_AUTO_EPOCHS = 20, 2
