"""Self-describing model directories: JSON configs and .npz arrays, never pickle.

A model directory holds ``xmc.json`` (format version, model kind, xmc version
and the byte size and SHA-256 of every other file below the directory) beside
the model's own files. Saves write the manifest last, listing the files the save
wrote (an earlier model's leftovers and a user's files stay unlisted); loads verify every file
it lists before parsing anything, so a missing, truncated, corrupted or swapped
file is reported by name instead of half-loading. Files added later (a user's
predictions or notes) are not the model's: they are ignored, and a loader that
reads inside :func:`reading` refuses any file the manifest does not list, so
nothing unverified is ever parsed. ``np.load`` is never used on model files
(:func:`load_arrays` parses .npz members itself, refusing object arrays), so a
directory handed to us cannot run code even if its manifest was forged to match.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Tuple, TypeVar

import numpy as np

from xmc import __version__
from xmc.utils.tempfiles import temp_file_beside

# 2: each model kind saves its own params (version 1 saved one flat object of every deep model's fields;
# xmc.models.params.DeepParams.from_saved reads both).
FORMAT_VERSION = 2
MANIFEST = "xmc.json"
_HASH_BLOCK = 1 << 20

T = TypeVar("T")


class ModelFormatError(ValueError):
    """A model directory is missing, damaged or from a newer xmc."""


# The model directories being loaded (absolute path, the files their manifest lists), innermost last.
_LOADING: ContextVar[Tuple[Tuple[Path, FrozenSet[str]], ...]] = ContextVar("xmc_loading", default=())


@contextlib.contextmanager
def reading(model_dir: Path, manifest: Mapping[str, Any]) -> Iterator[None]:
    """While a loader reads ``model_dir``: every file below it that :func:`load_json`, :func:`load_arrays`
    or :func:`load_text` opens must be listed in ``manifest`` (verified by :func:`read_manifest`), so an
    unlisted file, which nothing vouches for, is refused instead of parsed."""
    listed = frozenset(manifest.get("files", {})) | {MANIFEST}
    token = _LOADING.set(_LOADING.get() + ((Path(model_dir).absolute(), listed),))
    try:
        yield
    finally:
        _LOADING.reset(token)


def _check_listed(path: Path) -> None:
    target = Path(path).absolute()
    for model_dir, listed in _LOADING.get():
        try:
            rel = target.relative_to(model_dir).as_posix()
        except ValueError:
            continue
        if rel not in listed:
            raise ModelFormatError(f"{path}: not listed in the manifest {model_dir / MANIFEST}, so nothing "
                                   f"vouches for it; the model's save lists every file its loader reads")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    # Write beside the target then rename, so a crash leaves the old file or the new one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
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
    text = load_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: not valid JSON ({e})") from e


def load_text(path: Path) -> str:
    """A UTF-8 text file of a model directory (a tokenizer's, a JSON file's): a listed file, present, UTF-8."""
    path = Path(path)
    _check_listed(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: file is missing")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"{path}: not UTF-8 text ({e})") from e


def load_saved_params(path: Path, params_class: Any) -> Tuple[Dict[str, Any], Any]:
    """(the JSON object of ``path``, its ``"params"`` read by ``params_class.from_dict``): a saved component's
    settings, any problem a :class:`ModelFormatError` naming the file."""
    info = load_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("params"), dict):
        raise ModelFormatError(f"{path}: expected an object with 'params'")
    try:
        return info, params_class.from_dict(info["params"], strict=False)
    except (TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}: bad params ({e})") from None


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(Path(path), buf.getvalue())


def load_arrays(path: Path) -> Dict[str, np.ndarray]:
    """The arrays of an .npz xmc wrote, read member by member without np.load.

    Each .npy header is checked before anything is allocated: its data must
    fill the member exactly (a forged shape cannot ask for terabytes) and
    members must be stored uncompressed, as ``save_arrays`` writes them (a
    deflated member could expand a small file into gigabytes). Object arrays
    (pickle) are refused.
    """
    path = Path(path)
    _check_listed(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: file is missing")
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:1] == b"\x80" or head == b"\x93NUMPY":
        # A bare pickle, or a lone .npy (numpy would unpickle an object one): never what save_arrays writes.
        what = "holds pickled (object) data" if head[:1] == b"\x80" else "is a single .npy array"
        raise ModelFormatError(f"{path}: {what}, which xmc never writes; refusing to load it "
                               f"(expected an .npz archive)")
    try:
        with zipfile.ZipFile(path) as zf:
            out: Dict[str, np.ndarray] = {}
            for member in zf.infolist():
                name = member.filename[:-4] if member.filename.endswith(".npy") else None
                if name is None or name in out:
                    raise ModelFormatError(f"{path}: member {member.filename!r} is not a uniquely named .npy array")
                if member.compress_type != zipfile.ZIP_STORED:
                    raise ModelFormatError(f"{path}: array {name!r} is compressed; xmc stores arrays "
                                           f"uncompressed, refusing it")
                with zf.open(member) as f:
                    out[name] = _read_npy(path, name, f, member.file_size)
            return out
    except ModelFormatError:
        raise
    except Exception as e:  # zipfile.BadZipFile, OSError, EOFError, ValueError from the header parser
        raise ModelFormatError(f"{path}: damaged or not an .npz file ({e})") from e


def _read_npy(path: Path, name: str, f, size: int) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ModelFormatError(f"{path}: array {name!r} has .npy format version {version}, expected 1.0 or 2.0")
    if dtype.hasobject:
        raise ModelFormatError(f"{path}: holds pickled (object) data, which xmc never writes; refusing to load it")
    count = 1
    for n in shape:
        count *= n
    available = size - f.tell()
    if count < 0 or count * dtype.itemsize != available:
        raise ModelFormatError(f"{path}: array {name!r} claims shape {shape} of {dtype} "
                               f"({max(count, 0) * dtype.itemsize:,} bytes) but its member holds {available:,}")
    arr = np.empty(count, dtype=dtype)
    buf, done = arr.view(np.uint8).reshape(-1) if arr.nbytes else None, 0
    while done < available:
        got = f.readinto(buf[done:])
        if not got:
            raise ModelFormatError(f"{path}: array {name!r} ends after {done:,} of {available:,} bytes")
        done += got
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def file_digest(path: Path) -> Tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read in 1 MiB blocks so large weights never sit in memory twice."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(_HASH_BLOCK)
            if not block:
                break
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def _model_files(model_dir: Path) -> List[str]:
    # Hidden names are the temp files of an interrupted atomic write (and OS litter); never part of a model.
    out = []
    top = os.fspath(model_dir)
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = os.path.relpath(root, top).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        out.extend(prefix + name for name in sorted(files) if not name.startswith(".") and prefix + name != MANIFEST)
    return out


# Per directory being saved: the files it held when the save began. A save writes each file anew (a
# temporary file renamed over the old one), so the inode tells a rewritten file even within the clock's
# granularity.
_BEFORE_SAVE: Dict[str, Dict[str, Tuple[int, int, int]]] = {}


def _stamps(model_dir: Path) -> Dict[str, Tuple[int, int, int]]:
    out = {}
    for rel in _model_files(model_dir):
        st = (model_dir / rel).stat()
        out[rel] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def begin_save(model_dir: Path) -> Path:
    """Make ``model_dir`` and drop any old manifest first, so an interrupted re-save is never loadable. The
    files already there are noted: :func:`write_manifest` lists only those the save writes or rewrites, so a
    model saved over another (``--overwrite``) does not claim the other's leftover files."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        (model_dir / MANIFEST).unlink()
    except FileNotFoundError:
        pass
    _BEFORE_SAVE[os.path.realpath(model_dir)] = _stamps(model_dir)
    return model_dir


def write_manifest(model_dir: Path, kind: str, extra: Mapping[str, Any] = ()) -> None:
    """Write ``xmc.json`` listing the size and SHA-256 of the files below ``model_dir`` that the save wrote
    (every file, for a directory whose save did not start with :func:`begin_save`).

    Call it last: the manifest is what makes a directory a model. Nested model
    directories' manifests are ordinary files here, so the outer one covers them.
    """
    model_dir = Path(model_dir)
    before = _BEFORE_SAVE.pop(os.path.realpath(model_dir), {})
    files = {}
    for rel, stamp in _stamps(model_dir).items():
        if before.get(rel) == stamp:
            continue  # there before the save and untouched by it: not this model's
        size, digest = file_digest(model_dir / rel)
        files[rel] = {"bytes": size, "sha256": digest}
    save_json(model_dir / MANIFEST, {"format_version": FORMAT_VERSION, "kind": kind, "xmc_version": __version__,
                                     **dict(extra), "files": files})


def _fmt_bytes(n: int) -> str:
    return f"{n:,} byte" + ("" if n == 1 else "s")


def _read_manifest_json(model_dir: Path) -> Dict[str, Any]:
    if not model_dir.is_dir():
        raise ModelFormatError(f"{model_dir}: not a directory; expected a model saved by xmc")
    path = model_dir / MANIFEST
    if not path.is_file():
        hint = "the manifest is written last, so the save may have been interrupted"
        if any((model_dir / name).is_dir() for name in ("checkpoint", ".checkpoint.old", ".checkpoint.done")):
            hint = ("it holds only a training checkpoint: finish the training with the same command and "
                    "--resume, then predict")
        raise ModelFormatError(f"{path}: missing; {model_dir} is not a finished xmc model ({hint})")
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path}: corrupted or truncated manifest: not valid JSON ({e})") from e
    if not isinstance(info, dict):
        raise ModelFormatError(f"{path}: expected a JSON object, found {type(info).__name__}")
    version = info.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFormatError(f"{path}: format version {version!r} is not one xmc wrote; "
                               f"this xmc reads format versions 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        written_by = info.get("xmc_version")
        by = f" (written by xmc {written_by})" if isinstance(written_by, str) else ""
        raise ModelFormatError(f"{path}: format version {version}{by} is newer than this xmc reads "
                               f"(1 to {FORMAT_VERSION}); upgrade xmc")
    files = info.get("files")
    if not isinstance(files, dict):
        raise ModelFormatError(f"{path}: lists no file checksums (saved by an xmc before checksummed "
                               f"models, or edited); re-train and save the model again")
    return info


def _check_entry(model_dir: Path, rel: Any, entry: Any) -> None:
    path = model_dir / str(rel)
    # A crafted manifest must not make us read (or vouch for) anything outside the model directory.
    if (not isinstance(rel, str) or not rel or Path(rel).is_absolute()
            or any(part in ("", ".", "..") for part in rel.split("/"))):
        raise ModelFormatError(f"{model_dir / MANIFEST}: lists {rel!r}, which is not a path inside the model")
    if (not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int)
            or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64):
        raise ModelFormatError(f"{model_dir / MANIFEST}: entry for {rel!r} needs an integer 'bytes' and a "
                               f"64-digit 'sha256'; found {entry!r}")
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing (the manifest lists it with {_fmt_bytes(entry['bytes'])})")
    size = path.stat().st_size
    if size != entry["bytes"]:
        what = "truncated" if size < entry["bytes"] else "grew"
        raise ModelFormatError(f"{path}: {what}: {_fmt_bytes(size)}, manifest says {entry['bytes']:,}")
    size, digest = file_digest(path)
    if digest != entry["sha256"].lower():
        raise ModelFormatError(f"{path}: corrupted: SHA-256 differs from the manifest")


def verify_model_dir(model_dir: Path, required: Iterable[str] = ()) -> Dict[str, Any]:
    """Check the manifest, then every file it lists, before any model file is parsed.

    ``required`` are paths (relative, '/'-separated) the loader will read: each
    must be listed. Files present but not listed (a user's predictions or notes)
    are not the model's and are left alone; loaders read inside :func:`reading`,
    which refuses them. Returns the manifest.
    """
    model_dir = Path(model_dir)
    return _verify(model_dir, _read_manifest_json(model_dir), required)


def _verify(model_dir: Path, info: Dict[str, Any], required: Iterable[str]) -> Dict[str, Any]:
    files = info["files"]
    for rel in required:
        if rel not in files:
            state = "present but not listed in" if (model_dir / rel).exists() else "missing, and not listed in"
            raise ModelFormatError(f"{model_dir / rel}: missing: {state} the manifest {model_dir / MANIFEST}")
    for rel, entry in files.items():
        _check_entry(model_dir, rel, entry)
    return info


def read_manifest(model_dir: Path, expected_kind: str, required: Iterable[str] = (),
                  verify: bool = True) -> Dict[str, Any]:
    """The manifest of a ``expected_kind`` model, after checking every file (unless the caller already did)."""
    model_dir = Path(model_dir)
    info = _read_manifest_json(model_dir)
    if info.get("kind") != expected_kind:
        raise ModelFormatError(
            f"{model_dir / MANIFEST}: holds a {info.get('kind')!r} model, expected {expected_kind!r}")
    if verify:
        _verify(model_dir, info, required)
    else:
        missing = [rel for rel in required if rel not in info["files"]]
        if missing:
            raise ModelFormatError(f"{model_dir / missing[0]}: missing: not listed in the manifest "
                                   f"{model_dir / MANIFEST}")
    return info


def verify_files(model_dir: Path, manifest: Dict[str, Any], rels: Iterable[str]) -> None:
    """Check that each of ``rels`` is listed in ``manifest`` (read from ``model_dir``) and matches its size and
    SHA-256: what a loader runs on the optional files it reads."""
    model_dir = Path(model_dir)
    files = manifest.get("files", {})
    for rel in rels:
        if rel not in files:
            raise ModelFormatError(f"{model_dir / rel}: missing: not listed in the manifest {model_dir / MANIFEST}")
        _check_entry(model_dir, rel, files[rel])


def add_to_manifest(model_dir: Path, rels: Iterable[str]) -> None:
    """List (or list again) the files ``rels``, written into a finished model directory, in its manifest.

    Every file the manifest lists already is checked first, so the new manifest vouches for nothing
    that was not verified; the manifest is replaced atomically."""
    model_dir = Path(model_dir)
    info = _read_manifest_json(model_dir)
    rels = list(rels)
    for rel, entry in info["files"].items():
        if rel not in rels:
            _check_entry(model_dir, rel, entry)
    for rel in rels:
        size, digest = file_digest(model_dir / rel)
        info["files"][rel] = {"bytes": size, "sha256": digest}
    save_json(model_dir / MANIFEST, info)
