"""Checkpoints of the deep models' training: write, verify, resume, and Ctrl-C.

Layout of a checkpoint directory (written whole and swapped into place by
:func:`xmc.utils.checkpoint.write_checkpoint`)::

    xmc.json        manifest (kind "checkpoint", model kind, SHA-256 of every file)
    state.json      params, data fingerprint, position (level, epoch loop state or "complete"),
                    Adam's param groups, numpy generator states, model manifest extras
    arrays.npz      network weights (finished levels and the current one), "best.*" best weights
                    and "average.*" running weight average of the current level,
                    "adam.<i>.<key>" Adam moments and step counts,
                    "rng.torch" / "rng.cuda" generator states (uint8)
    embeddings.npz  the word vectors, only before the first network exists (later they live in the weights)
    labels.json, text/, tree/   label vocabulary, text encoder and label tree (never refit on resume)
"""
from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from xmc.data import LabelVocab, TextData
from xmc.models.base import TEXT_DIR, TREE_DIR, load_state
from xmc.models.training import LoopState, State
from xmc.nn.text import TextEncoder
from xmc.tree import LabelTree
from xmc.utils.checkpoint import (STATE_JSON, CheckpointError, find_checkpoint, fingerprint, open_checkpoint,
                                  write_checkpoint)
from xmc.utils.modeldir import load_arrays, load_json, save_arrays, save_json

ARRAYS = "arrays.npz"
EMBEDDINGS = "embeddings.npz"
FORMAT = 1
WEIGHT_SETS = ("best", "average")  # weight sets the epoch loop keeps beside the network's own
# Options that change how fast training runs, not what it computes: a resume may change them.
FREE_PARAMS = {"threads", "device", "eval_batch_size", "checkpoint_every", "embedding.threads"}


def data_fingerprint(corpus: TextData, valid: Optional[TextData]) -> str:
    def parts(data: TextData, tag: bytes) -> Iterator[bytes]:
        yield tag
        for text, labels in zip(data.texts, data.labels):
            yield text.encode("utf-8")
            yield "\x1f".join(str(x) for x in labels).encode("utf-8")

    chunks = list(parts(corpus, b"train"))
    if valid is not None:
        chunks += list(parts(valid, b"valid"))
    return fingerprint(chunks)


def _flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def params_changes(saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """Differences between the checkpoint's params and this run's that would change the result."""
    a, b = _flat(saved), _flat(now)
    return [f"{k}: checkpoint {a.get(k)!r}, now {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in FREE_PARAMS and a.get(k) != b.get(k)]


def _optimizer_arrays(optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, np.ndarray], List[Dict[str, Any]]]:
    sd = optimizer.state_dict()
    arrays = {f"adam.{index}.{key}": value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
              for index, entry in sd["state"].items() for key, value in entry.items()}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    return arrays, groups


def _load_optimizer(optimizer: torch.optim.Optimizer, arrays: Dict[str, np.ndarray], groups: List[Dict[str, Any]],
                    path: Path) -> None:
    state: Dict[int, Dict[str, torch.Tensor]] = {}
    for name, value in arrays.items():
        if name.startswith("adam."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = torch.from_numpy(np.array(value)).clone()
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: the optimiser state does not fit this network ({e})") from e


class LevelCheckpoint:
    """The :class:`xmc.models.training.LoopCheckpoint` of one network (an AttentionXML level, or LightAttention)."""

    def __init__(self, owner: "DeepCheckpoint", level: int, prefix: str, net: torch.nn.Module,
                 rngs: Dict[str, np.random.Generator]) -> None:
        self.owner, self.level, self.prefix, self.net, self.rngs = owner, level, prefix, net, rngs
        self.every = owner.every

    @property
    def path(self) -> Path:
        return self.owner.path

    def interrupted(self) -> bool:
        return self.owner.interrupted()

    def resume_point(self, optimizer: torch.optim.Optimizer) -> Optional[Tuple[LoopState, Dict[str, State]]]:
        saved = self.owner.take_loop(self.level)
        if saved is None:
            return None
        state, arrays = saved
        load_state(self.prefix, self.net, arrays, self.path)
        weights = {}
        for kind in WEIGHT_SETS:
            found = {name[len(kind) + 1:]: torch.from_numpy(np.array(v)).clone().to(self.owner.model.device)
                     for name, v in arrays.items() if name.startswith(f"{kind}.")}
            if not found:
                continue
            if set(found) != set(self.net.state_dict()):
                raise CheckpointError(f"{self.path}: its {kind} weights do not fit this network")
            weights[kind] = found
        _load_optimizer(optimizer, arrays, state.get("optimizer", []), self.path)
        for name, gen in self.rngs.items():
            gen.bit_generator.state = state["numpy_rngs"][name]
        torch.set_rng_state(torch.from_numpy(np.array(arrays["rng.torch"])))
        if "rng.cuda" in arrays and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([torch.from_numpy(np.array(r)) for r in arrays["rng.cuda"]])
        return LoopState.from_dict(state["position"]["loop"]), weights

    def save(self, loop: LoopState, optimizer: torch.optim.Optimizer, weights: Dict[str, State]) -> None:
        arrays, groups = _optimizer_arrays(optimizer)
        for kind, state in weights.items():
            arrays.update({f"{kind}.{k}": v.detach().cpu().numpy() for k, v in state.items()})
        self.owner.write({"level": self.level, "loop": loop.to_dict()}, arrays, groups, self.rngs)


class DeepCheckpoint:
    """Checkpoints of one deep model's training in ``path``; resumes from the one there when ``resume``."""

    def __init__(self, model, path: Path, data_hash: str, every: int = 0) -> None:
        self.model, self.path, self.data_hash, self.every = model, Path(path), data_hash, int(every)
        self.state: Optional[Dict[str, Any]] = None  # the loaded checkpoint's state.json
        self.arrays: Dict[str, np.ndarray] = {}
        self._stop = False

    # ---- resume ------------------------------------------------------------------
    def load(self) -> bool:
        """Read the checkpoint (verified against its manifest) if there is one; False when there is none."""
        found = find_checkpoint(self.path)
        if found is None:
            return False
        open_checkpoint(found, self.model.KIND, required=[STATE_JSON, ARRAYS])
        state = load_json(found / STATE_JSON)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{found / STATE_JSON}: not a checkpoint format this xmc reads ({FORMAT})")
        if state.get("data") != self.data_hash:
            raise CheckpointError(f"{found}: was written while training on other data (the training or validation "
                                  f"documents differ); resume with the same files, or start over without --resume")
        changes = params_changes(state["params"], self.model.params.to_dict())
        if changes:
            raise CheckpointError(f"{found}: was written with other options; resume with the same command "
                                  f"(or start over without --resume). Differences: " + "; ".join(changes))
        self.model.vocab = LabelVocab.load(found)
        self.model.text = TextEncoder.load(found / TEXT_DIR)
        self.model.tree = LabelTree.load(found / TREE_DIR)
        self.arrays = load_arrays(found / ARRAYS)
        self.embeddings = load_arrays(found / EMBEDDINGS)["embeddings"] if (found / EMBEDDINGS).is_file() else None
        self.state, self.found = state, found
        return True

    @property
    def complete(self) -> bool:
        return bool(self.state and self.state["position"].get("complete"))

    @property
    def resume_level(self) -> int:
        """The level training continues at (1 when starting fresh or from the preparation checkpoint)."""
        if self.state is None or self.state["position"].get("loop") is None:
            return 1
        return int(self.state["position"]["level"])

    def restore(self, prefix: str, module: torch.nn.Module) -> None:
        """Weights of a network the checkpoint holds (a finished level, or the final model)."""
        load_state(prefix, module, self.arrays, self.found)

    def take_loop(self, level: int) -> Optional[Tuple[Dict[str, Any], Dict[str, np.ndarray]]]:
        """The saved loop of ``level``, once (a later level then starts fresh)."""
        if self.state is None or self.state["position"].get("loop") is None or self.resume_level != level:
            return None
        state, arrays = self.state, self.arrays
        self.state = None
        return state, arrays

    # ---- write -------------------------------------------------------------------
    def write(self, position: Dict[str, Any], arrays: Dict[str, np.ndarray], optimizer_groups: List[Dict[str, Any]],
              rngs: Dict[str, np.random.Generator], embeddings: Optional[np.ndarray] = None) -> None:
        from xmc import distributed

        if not distributed.is_main():  # under torchrun the ranks hold the same weights: rank 0 writes them
            return
        model = self.model
        arrays = {**model._weights(), **arrays, "rng.torch": torch.get_rng_state().numpy()}
        if model.device.type == "cuda":
            arrays["rng.cuda"] = np.stack([r.numpy() for r in torch.cuda.get_rng_state_all()])
        state = {"format": FORMAT, "params": model.params.to_dict(), "data": self.data_hash, "position": position,
                 "optimizer": optimizer_groups, "manifest": model._manifest_extra(),
                 "numpy_rngs": {name: gen.bit_generator.state for name, gen in rngs.items()}}

        def fill(folder: Path) -> None:
            save_json(folder / STATE_JSON, state)
            save_arrays(folder / ARRAYS, arrays)
            if embeddings is not None:
                save_arrays(folder / EMBEDDINGS, {"embeddings": embeddings})
            model.vocab.save(folder)
            model.text.save(folder / TEXT_DIR)
            model.tree.save(folder / TREE_DIR)

        write_checkpoint(self.path, model.KIND, fill, {"position": {k: v for k, v in position.items() if k != "loop"}})

    def write_prepared(self, embeddings: np.ndarray) -> None:
        """After the vocabularies, tree and word vectors are made, before any network: resuming skips all that."""
        self.write({"level": 1, "loop": None}, {}, [], {}, embeddings=embeddings)

    def write_complete(self) -> None:
        self.write({"complete": True}, {}, [], {})

    def for_level(self, level: int, prefix: str, net: torch.nn.Module,
                  rngs: Optional[Dict[str, np.random.Generator]] = None) -> LevelCheckpoint:
        return LevelCheckpoint(self, level, prefix, net, rngs or {})

    # ---- Ctrl-C --------------------------------------------------------------------
    def interrupted(self) -> bool:
        return self._stop

    @contextlib.contextmanager
    def stop_on_sigint(self) -> Iterator[None]:
        """First Ctrl-C: finish the step, checkpoint, stop (TrainingInterrupted). A second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
