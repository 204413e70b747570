"""Crash-safe checkpoint directories, shared by the linear PLT and the deep models.

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
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

from xmc.utils.modeldir import MANIFEST, ModelFormatError, read_manifest, write_manifest

KIND = "checkpoint"
STATE_JSON = "state.json"


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
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
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
            doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
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
