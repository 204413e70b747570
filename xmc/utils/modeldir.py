"""Self-describing model directories: JSON configs and .npz arrays, never pickle.

A model directory holds ``xmc.json`` (format version, model kind, xmc version)
beside the model's own files. ``np.load`` is always called with
``allow_pickle=False`` so a directory handed to us cannot run code.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Type, TypeVar

import numpy as np

FORMAT_VERSION = 1
MANIFEST = "xmc.json"

T = TypeVar("T")


class ModelFormatError(ValueError):
    """A model directory is missing, damaged or from a newer xmc."""


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    # Write beside the target then rename, so a crash leaves the old file or the new one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def load_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path}: not valid JSON ({e})") from e


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(Path(path), buf.getvalue())


def load_arrays(path: Path) -> Dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: file is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:  # object arrays would need pickle: refuse them
        raise ModelFormatError(f"{path}: holds arrays that need pickle; refusing to load ({e})") from e
    except Exception as e:  # zipfile.BadZipFile, OSError, EOFError on truncation
        raise ModelFormatError(f"{path}: damaged or not an .npz file ({e})") from e


def dataclass_to_dict(obj: Any) -> Dict[str, Any]:
    return dataclasses.asdict(obj)


def dataclass_from_dict(cls: Type[T], data: Mapping[str, Any]) -> T:
    """Build ``cls`` from a dict, ignoring unknown keys (newer configs) and checking types lightly."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in fields})


def write_manifest(model_dir: Path, kind: str, extra: Mapping[str, Any] = ()) -> None:
    from xmc import __version__

    save_json(Path(model_dir) / MANIFEST,
              {"format_version": FORMAT_VERSION, "kind": kind, "xmc_version": __version__, **dict(extra)})


def read_manifest(model_dir: Path, expected_kind: str) -> Dict[str, Any]:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFormatError(f"{model_dir}: not a directory; expected a model saved by xmc")
    info = load_json(model_dir / MANIFEST)
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{model_dir / MANIFEST}: format version {version!r} is newer than this xmc reads "
            f"({FORMAT_VERSION}); upgrade xmc")
    if info.get("kind") != expected_kind:
        raise ModelFormatError(
            f"{model_dir / MANIFEST}: holds a {info.get('kind')!r} model, expected {expected_kind!r}")
    return info
