"""A binary cache of parsed XC files: memory-mapped .npy arrays written on the first read.

A second read of the same file (same path, size, modification time and reader options)
maps the arrays instead of parsing the text again, and processes that map the same cache
share its pages (several training or prediction processes on one machine hold one copy).

Where: ``$XMC_CACHE_DIR``, else ``~/.cache/xmc``; one folder per (file, options), named
by a hash. When: :func:`read_xc_cached` with ``cache=None`` caches files of at least
``$XMC_CACHE_MIN_BYTES`` (default 64 MiB: smaller files parse in well under a second).
A cache that fails its checks (a crash while writing, a disk error, an edited file) is
not used: the text file is parsed again and the cache rewritten, with a warning.
Arrays are read with ``allow_pickle=False``; nothing in a cache can execute code.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import scipy.sparse as sp

from xmc.data.xc import PathLike, XCData, read_xc
from xmc.utils.tempfiles import temp_dir_beside

CACHE_ENV = "XMC_CACHE_DIR"
MIN_BYTES_ENV = "XMC_CACHE_MIN_BYTES"
DEFAULT_MIN_BYTES = 64 << 20
FORMAT = 1
_ARRAYS = ("X_indptr", "X_indices", "X_data", "Y_indptr", "Y_indices", "Y_data")


class CacheWarning(UserWarning):
    """A cache could not be used or written; the text file was parsed instead."""


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "xmc")


def read_xc_cached(path: PathLike, cache: Optional[bool] = None, **options: Any) -> XCData:
    """:func:`~xmc.data.read_xc` through the cache; ``options`` are read_xc's.

    ``cache``: True always uses it, False never, None when the file has at least
    ``$XMC_CACHE_MIN_BYTES``. The matrices of a cache hit are read-only memory maps.
    """
    p = os.fspath(path)  # as the user gave it, for messages; the cache is keyed by the absolute path
    if cache is None:
        cache = os.path.isfile(p) and os.path.getsize(p) >= int(os.environ.get(MIN_BYTES_ENV, DEFAULT_MIN_BYTES))
    if not cache:
        return read_xc(p, **options)
    source = _source_facts(os.path.abspath(p), options)
    folder = cache_root() / hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:32]
    if (folder / "meta.json").is_file():
        try:
            return _load(folder, source)
        except (OSError, ValueError) as e:
            warnings.warn(f"{folder}: cache of {p} not used ({e}); parsing the file again", CacheWarning,
                          stacklevel=2)
    data = read_xc(p, **options)
    try:
        _store(folder, source, data)
        return _load(folder, source)  # mapped, so this process shares the pages with the next ones
    except OSError as e:  # a read-only or full disk: the parsed data is still good
        warnings.warn(f"{folder}: could not write the cache of {p} ({e})", CacheWarning, stacklevel=2)
        return data


def _source_facts(path: str, options: Dict[str, Any]) -> Dict[str, Any]:
    st = os.stat(path)
    # threads changes how the file is read, not what is read.
    kept = {k: v for k, v in sorted(options.items()) if k != "threads"}
    return {"format": FORMAT, "path": path, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "options": kept}


def _store(folder: Path, source: Dict[str, Any], data: XCData) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(folder)
    try:
        arrays = {"X_indptr": data.X.indptr, "X_indices": data.X.indices, "X_data": data.X.data,
                  "Y_indptr": data.Y.indptr, "Y_indices": data.Y.indices, "Y_data": data.Y.data}
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        meta = {**source, "n_docs": data.n_docs, "n_features": data.n_features, "n_labels": data.n_labels}
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))  # last: its presence marks a whole cache
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(folder: Path, source: Dict[str, Any]) -> XCData:
    meta = json.loads((folder / "meta.json").read_text())
    if not isinstance(meta, dict) or {k: meta.get(k) for k in source} != source:
        raise ValueError("it was written for another file or other options")
    n, D, L = (meta.get(k) for k in ("n_docs", "n_features", "n_labels"))
    if not all(type(v) is int and v >= 0 for v in (n, D, L)):
        raise ValueError("meta.json has no valid shape")
    a = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS}
    X = _checked_csr(a["X_indptr"], a["X_indices"], a["X_data"], n, D, "X")
    Y = _checked_csr(a["Y_indptr"], a["Y_indices"], a["Y_data"], n, L, "Y")
    return XCData(X=X, Y=Y, n_features=D, n_labels=L)


def _checked_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: int, cols: int,
                 what: str) -> sp.csr_matrix:
    # One pass over each array: a damaged cache must not reach native code that trusts CSR invariants.
    nnz = indices.shape[0] if indices.ndim == 1 else -1
    if (indptr.ndim != 1 or indptr.shape[0] != rows + 1 or indices.ndim != 1 or indptr.dtype.kind != "i"
            or indices.dtype.kind != "i" or indptr[0] != 0 or indptr[-1] != nnz):
        raise ValueError(f"{what}: arrays of the wrong shape or type")
    if rows and np.any(indptr[1:] < indptr[:-1]):
        raise ValueError(f"{what}: row offsets decrease")
    if nnz and (indices.min() < 0 or indices.max() >= cols):
        raise ValueError(f"{what}: column ids outside [0, {cols})")
    if data.shape != (nnz,) or data.dtype != np.float32 or not np.isfinite(data).all():
        raise ValueError(f"{what}: values of the wrong shape or type, or not finite")
    return sp.csr_matrix((data, indices, indptr), shape=(rows, cols))
