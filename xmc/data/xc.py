"""Extreme Classification Repository sparse files: ``N D L`` header, then
``l1,l2 f:v f:v ...`` per document. Reading and writing run in the native core."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp

from xmc.data.compressed import check_file, is_gzip, read_all
from xmc.data.limits import resolve_limits
from xmc.utils.sparse import as_csr, csr_from_arrays
from xmc.utils.tempfiles import temp_file_beside

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class XCData:
    """Features ``X`` (float32 CSR, n_docs x n_features) and labels ``Y``
    (float32 CSR of ones, n_docs x n_labels), columns sorted per row."""

    X: sp.csr_matrix
    Y: sp.csr_matrix
    n_features: int
    n_labels: int

    @property
    def n_docs(self) -> int:
        return int(self.X.shape[0])


def _check_path(path: PathLike) -> str:
    return check_file(path, "an XC data file")


def _check_dim(name: str, value: Optional[int]) -> int:
    if value is None:
        return -1
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _to_xcdata(result) -> XCData:
    (xp, xi, xd, xs), (yp, yi, yd, ys), _had_header = result
    X = csr_from_arrays(xp, xi, xd, xs)
    Y = csr_from_arrays(yp, yi, yd, ys)
    return XCData(X=X, Y=Y, n_features=int(xs[1]), n_labels=int(ys[1]))


def read_xc(path: PathLike, n_features: Optional[int] = None, n_labels: Optional[int] = None,
            threads: int = 0, max_line_bytes: Optional[int] = None,
            max_labels_per_doc: Optional[int] = None) -> XCData:
    """Read an XC file in parallel (a gzip-compressed one is decompressed in memory first).

    Without a header the dimensions come from the body (largest id + 1).
    ``n_features``/``n_labels`` fix them instead (e.g. a test file read with the
    training dimensions); ids at or beyond them, or beyond the header's D/L,
    are errors, and so is a header whose D or L differs from them. Malformed
    input raises :class:`xmc.data.DataFormatError` naming file, line, what was
    expected and what was found. Lines longer than ``max_line_bytes`` or with
    more than ``max_labels_per_doc`` labels are refused while scanning
    (:mod:`xmc.data.limits`: environment variable, then default, when None).
    """
    from xmc import _core

    p = _check_path(path)
    if is_gzip(p):  # decompressed in memory, then parsed as the file itself: errors name it and its lines
        return parse_xc_bytes(read_all(p), p, n_features, n_labels, threads, max_line_bytes=max_line_bytes,
                              max_labels_per_doc=max_labels_per_doc)
    max_line, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    return _to_xcdata(_core.read_xc(p, _check_dim("n_features", n_features),
                                    _check_dim("n_labels", n_labels), int(threads), max_line, max_labels))


def parse_xc_bytes(data: bytes, name: str = "<bytes>", n_features: Optional[int] = None,
                   n_labels: Optional[int] = None, threads: int = 0,
                   min_chunk_bytes: int = 1 << 20, max_line_bytes: Optional[int] = None,
                   max_labels_per_doc: Optional[int] = None) -> XCData:
    """:func:`read_xc` over bytes in memory; ``name`` stands for the file in errors."""
    from xmc import _core

    max_line, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    return _to_xcdata(_core.parse_xc_bytes(bytes(data), name, _check_dim("n_features", n_features),
                                           _check_dim("n_labels", n_labels), int(threads),
                                           int(min_chunk_bytes), max_line, max_labels))


def _canonical(matrix, what: str) -> sp.csr_matrix:
    m = as_csr(matrix)
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    if m.shape[1] > np.iinfo(np.int32).max:
        raise ValueError(f"{what} has {m.shape[1]} columns; the XC format needs ids that fit int32")
    return m


def write_xc(path: PathLike, X, Y, header: bool = True, threads: int = 0) -> None:
    """Write features ``X`` and labels ``Y`` (nonzero pattern) as an XC file.

    Atomic: the file is written beside ``path`` under a temporary name and
    renamed, so ``path`` holds either its old content or the complete new one.
    Values are written in the shortest form that reads back to the same float32.
    """
    from xmc import _core

    X = _canonical(X, "X")
    Y = _canonical(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; they must match")
    if X.nnz and not np.isfinite(X.data).all():
        bad = int(np.flatnonzero(~np.isfinite(X.data))[0])
        row = int(np.searchsorted(X.indptr, bad, side="right") - 1)
        raise ValueError(f"X row {row} holds a non-finite value; the XC format allows finite numbers only")
    if Y.nnz and (Y.data == 0).any():
        Y = Y.copy()
        Y.eliminate_zeros()

    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(target)
    os.close(fd)
    try:
        _core.write_xc(tmp, X.indptr.astype(np.int64, copy=False), X.indices.astype(np.int32, copy=False),
                       X.data.astype(np.float32, copy=False), int(X.shape[1]),
                       Y.indptr.astype(np.int64, copy=False), Y.indices.astype(np.int32, copy=False),
                       int(Y.shape[1]), bool(header), int(threads))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
