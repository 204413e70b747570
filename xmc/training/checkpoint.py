"""Training checkpoints: crash-safe directories shared by the linear PLT and the deep models, and what
the deep models keep in them to resume bit for bit.

A checkpoint is an ordinary self-describing directory (``xmc.json`` manifest
with the size and SHA-256 of every file, kind ``"checkpoint"``). It is written
into a hidden temporary sibling and swapped into place::

    DIR           the current checkpoint
    .DIR.tmp-*    a checkpoint being written (ignored and cleaned up)
    .DIR.old      the previous checkpoint during the swap (used if DIR is missing)
    .DIR.done     the final checkpoint while the finished model is being saved

The swap renames ``DIR`` to ``.DIR.old``, the temporary folder to ``DIR``,
then removes ``.DIR.old``: a SIGKILL at any moment leaves a complete
checkpoint in ``DIR``, ``.DIR.old`` or ``.DIR.done``, which :func:`find_checkpoint`
picks in that order. Hidden names are outside any model manifest, so the
default place (``MODEL_DIR/checkpoint``) can be set aside as ``.checkpoint.done``
while the model is saved around it.

The deep models' checkpoint (:class:`DeepCheckpoint`)::


    xmc.json        manifest (kind "checkpoint", model kind, SHA-256 of every file)
    state.json      params, data fingerprint, position (level, epoch loop state or "complete"),
                    Adam's param groups, numpy generator states, model manifest extras
    arrays.npz      network weights (finished levels and the current one), "best.*" best weights
                    and "average.*" running weight average of the current level,
                    "adam.<i>.<key>" Adam moments and step counts,
                    "rng.torch" / "rng.cuda" generator states (uint8)
    embeddings.npz  the word vectors, only before the first network exists (later they live in the weights)
    labels.json, text/, tree/   label vocabulary, text encoder and label tree (never refit on resume)

Torch is imported by the functions that use it: the linear PLT checkpoints without it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from xmc.data import LabelVocab, TextData
from xmc.text import load_text_encoder
from xmc.training import distributed
from xmc.tree import LabelTree
from xmc.utils.modeldir import (MANIFEST, ModelFormatError, load_arrays, load_json, read_manifest, reading,
                                save_arrays, save_json, write_manifest)
from xmc.utils.tempfiles import temp_dir_beside

if TYPE_CHECKING:
    import torch

    State = Dict[str, torch.Tensor]

KIND = "checkpoint"
STATE_JSON = "state.json"
# Where a deep model directory (and its checkpoint) keeps the text encoder and the label tree.
TEXT_DIR = "text"
TREE_DIR = "tree"


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C) after writing a checkpoint to ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"training interrupted; checkpoint written to {path}")
        self.path = Path(path)


class CheckpointError(ModelFormatError):
    """A checkpoint cannot be resumed: damaged, of another model, or from other data or options."""


def _old(path: Path) -> Path:
    return path.parent / f".{path.name}.old"


def _done(path: Path) -> Path:
    return path.parent / f".{path.name}.done"


def _remove_tree(path: Path) -> None:
    # The manifest goes first, so a removal cut short leaves a folder no one mistakes for a checkpoint.
    try:
        (path / MANIFEST).unlink()
    except FileNotFoundError:
        pass
    shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    # Renames are durable only once the parent directory is synced (ext4 without it may reorder them).
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _has_manifest(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _repair(path: Path) -> None:
    """Finish a swap a crash interrupted, and drop leftovers of interrupted writes."""
    old = _old(path)
    if not path.exists() and _has_manifest(old):
        os.replace(old, path)  # killed between the two renames: the previous checkpoint is the current one
    elif old.exists():
        _remove_tree(old)  # killed while removing the previous checkpoint
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        _remove_tree(leftover)


def write_checkpoint(path: Path, kind: str, fill: Callable[[Path], None], extra: Optional[Dict[str, Any]] = None) -> None:
    """Write a checkpoint of a ``kind`` model to ``path``: ``fill(folder)`` writes the files, then the swap."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair(path)
    done = _done(path)
    if done.exists():
        _remove_tree(done)  # a finished run's set-aside checkpoint; this run replaces it
    tmp = temp_dir_beside(path, ".tmp-")
    try:
        fill(tmp)
        write_manifest(tmp, KIND, {"model": kind, **(extra or {})})
        _fsync_dir(tmp)
        if path.exists():
            os.replace(path, _old(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        _remove_tree(tmp)
        raise
    _remove_tree(_old(path))


def find_checkpoint(path: Path) -> Optional[Path]:
    """The complete checkpoint at ``path`` (or its swap / set-aside sibling), None when there is none.

    A ``path`` that exists without a manifest is not a checkpoint xmc left (the
    swap never exposes a partial one): it is refused rather than ignored.
    """
    path = Path(path)
    if path.exists():
        if not _has_manifest(path):
            raise CheckpointError(f"{path}: exists but holds no checkpoint manifest ({MANIFEST}); it is damaged "
                                  f"or not an xmc checkpoint. Move it away to start over")
        return path
    for sibling in (_old(path), _done(path)):
        if _has_manifest(sibling):
            return sibling
    return None


def open_checkpoint(path: Path, kind: str, required: Iterable[str] = (STATE_JSON,)) -> Dict[str, Any]:
    """Verify every file of the checkpoint at ``path`` against its manifest; returns the manifest."""
    path = Path(path)
    try:
        info = read_manifest(path, KIND, required=list(required))
    except ModelFormatError as e:
        raise CheckpointError(f"cannot resume from the checkpoint {path}: {e}. Delete it to start over") from e
    if info.get("model") != kind:
        raise CheckpointError(f"{path}: a checkpoint of a {info.get('model')!r} model, not {kind!r}; "
                              f"resume with --model {info.get('model')} or use another checkpoint directory")
    return info


def set_aside(path: Path) -> Optional[Path]:
    """Rename the finished run's checkpoint to ``.NAME.done`` (outside the model manifest) before the model is saved."""
    path = Path(path)
    if (path / MANIFEST).is_file() or _old(path).exists():
        _repair(path)  # a folder of checkpoints (an ensemble's) has no swap of its own to finish
    if not path.exists():
        return None
    done = _done(path)
    if done.exists():
        _remove_tree(done)
    os.replace(path, done)
    _fsync_dir(path.parent)
    return done


def reclaim(path: Path) -> None:
    """Before resuming: a checkpoint set aside by a save that was then cut short goes back into place."""
    path = Path(path)
    done = _done(path)
    if not path.exists() and not _old(path).exists() and done.exists():
        os.replace(done, path)


def exists(path: Path) -> bool:
    """Whether anything of a checkpoint (or of a folder of them, as an ensemble's) is at ``path``."""
    path = Path(path)
    return any(p.exists() for p in (path, _old(path), _done(path)))


def remove_checkpoint(path: Path) -> None:
    """Delete the checkpoint at ``path`` and its siblings (after the finished model is saved).

    Each is first renamed to a temporary name, so a removal cut short leaves only litter
    the next write cleans up, never a half-deleted folder under a checkpoint's name.
    """
    path = Path(path)
    for p in (path, _old(path), _done(path)):
        if p.exists():
            doomed = temp_dir_beside(path, ".tmp-")
            os.replace(p, doomed / "x")
            shutil.rmtree(doomed, ignore_errors=True)
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        _remove_tree(leftover)


def fingerprint(parts: Iterable[bytes]) -> str:
    """SHA-256 of the training data, so a resume on other data is refused."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


# ---- the deep models' checkpoint ------------------------------------------------
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
    best_is_average: bool = False  # the kept weights are the running average, not one epoch's
    averaged: int = 0  # epoch-end weights in the running average
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



ARRAYS = "arrays.npz"
EMBEDDINGS = "embeddings.npz"
FORMAT = 1
WEIGHT_SETS = ("best", "average")  # weight sets the epoch loop keeps beside the network's own
# Fields that change how fast training runs, not what it computes, wherever they sit in the params:
# a resume may change them.
FREE_PARAMS = {"threads", "device", "eval_batch_size", "checkpoint_every"}


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
            if k.rsplit(".", 1)[-1] not in FREE_PARAMS and a.get(k) != b.get(k)]


def _optimizer_arrays(optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, np.ndarray], List[Dict[str, Any]]]:
    import torch

    sd = optimizer.state_dict()
    arrays = {f"adam.{index}.{key}": value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
              for index, entry in sd["state"].items() for key, value in entry.items()}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    return arrays, groups


def _load_optimizer(optimizer: torch.optim.Optimizer, arrays: Dict[str, np.ndarray], groups: List[Dict[str, Any]],
                    path: Path) -> None:
    import torch

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
    """The :class:`xmc.training.loop.LoopCheckpoint` of one network (an AttentionXML level, or LightAttention)."""

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
        import torch

        from xmc.layers.state import load_state

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
        self.owner.write({"level": self.level, "prefix": self.prefix, "loop": loop.to_dict()}, arrays, groups,
                         self.rngs)


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
        info = open_checkpoint(found, self.model.KIND, required=[STATE_JSON, ARRAYS])
        with reading(found, info):
            self._read(found)
        return True

    def _read(self, found: Path) -> None:
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
        self.model.text = load_text_encoder(found / TEXT_DIR)
        self.model.tree = LabelTree.load(found / TREE_DIR)
        self.arrays = load_arrays(found / ARRAYS)
        self.embeddings = load_arrays(found / EMBEDDINGS)["embeddings"] if (found / EMBEDDINGS).is_file() else None
        self.state, self.found = state, found

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
        from xmc.layers.state import load_state

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
        import torch

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

    # ---- Ctrl-C, SIGTERM -------------------------------------------------------------
    def interrupted(self) -> bool:
        return self._stop

    @contextlib.contextmanager
    def stop_on_sigint(self) -> Iterator[None]:
        """First Ctrl-C (or SIGTERM, which job schedulers send at a time limit): finish the step, checkpoint,
        stop (TrainingInterrupted). A second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True

        previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def best_model(model_class: type, path: Path) -> Tuple[Any, str]:
    """The model of the best weights an interrupted training's checkpoint at ``path`` holds, and a few words
    on them: the finished networks, and the one in training at its best validated epoch so far. Raises
    :class:`CheckpointError` when that is no model yet (no epoch validated, or networks still untrained)."""
    found = find_checkpoint(Path(path))
    if found is None:
        raise CheckpointError(f"{path}: no checkpoint there")
    info = open_checkpoint(found, model_class.KIND, required=[STATE_JSON, ARRAYS])
    with reading(found, info):
        state = load_json(found / STATE_JSON)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{found / STATE_JSON}: not a checkpoint format this xmc reads ({FORMAT})")
        try:
            model = model_class(model_class.PARAMS.from_dict(state["params"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{found / STATE_JSON}: invalid parameters ({e})") from None
        model.vocab = LabelVocab.load(found)
        model.text = load_text_encoder(found / TEXT_DIR)
        model.tree = LabelTree.load(found / TREE_DIR)
        arrays = load_arrays(found / ARRAYS)
    arrays, what = _best_weights(found, state["position"], arrays)
    try:
        model._load_weights(arrays, state["manifest"], found)
    except ModelFormatError as e:
        raise CheckpointError(f"{found}: the networks trained so far are not a whole model yet ({e}); resume the "
                              f"training to finish it") from None
    return model, what


def _best_weights(found: Path, position: Dict[str, Any], arrays: Dict[str, np.ndarray]
                  ) -> Tuple[Dict[str, np.ndarray], str]:
    """The network weights of a checkpoint with the network in training at its best epoch, and their story."""
    if position.get("complete"):
        return arrays, "the finished training's weights"
    loop, prefix = position.get("loop"), position.get("prefix")
    best = {name[len("best."):]: value for name, value in arrays.items() if name.startswith("best.")}
    if loop is None or not best:
        raise CheckpointError(f"{found}: no epoch has been validated yet, so there are no best weights to save")
    if not isinstance(prefix, str):
        raise CheckpointError(f"{found}: written by an xmc that did not record which network was training")
    kept = {name: value for name, value in arrays.items()
            if not name.startswith((f"{prefix}.", "best.", "average.", "adam.", "rng."))}
    kept.update({f"{prefix}.{name}": value for name, value in best.items()})
    state = LoopState.from_dict(loop)
    average = " (the running average of the weights)" if state.best_is_average else ""
    level = f" of level {position.get('level')}" if position.get("level", 1) != 1 else ""
    what = (f"the best weights so far (epoch {state.best_epoch}{average}{level}, validation score "
            f"{state.best_score * 100:.2f})")
    return kept, what
