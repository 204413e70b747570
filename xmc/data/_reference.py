"""Plain-Python reference of the XC reader, for tests and benchmarks.

Written for clarity, not speed: one line at a time with regular expressions.
It accepts and rejects the same inputs as the native reader and reports the
same line, so tests can compare the two on generated and real files.
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp

from xmc.data.errors import DataFormatError
from xmc.data.limits import resolve_limits

_MAX_ID = 2**31 - 2
_UINT = re.compile(r"[0-9]+\Z")
_LABELS = re.compile(r"[0-9]+(?:,[0-9]+)*\Z")
_FLOAT = re.compile(r"[+]?-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_FLOAT_WORDS = re.compile(r"-?(?:inf|infinity|nan)(?:\([0-9A-Za-z_]*\))?\Z", re.IGNORECASE)
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).smallest_subnormal) / 2  # rounds to zero: from_chars rejects it


def _uint(digits: str) -> int:
    """int() of a digit string, capped: Python refuses strings of > 4300 digits,
    and any value past int64 is out of every range the reader allows anyway."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else 2**64


_HEADER_MAX = (2**63 - 1) // 10  # the native header parser's cap


def _tokens(line: str):
    return [t for t in re.split(r"[ \t]+", line) if t]


def reference_parse_xc(data: bytes, name: str = "<bytes>", n_features: Optional[int] = None,
                       n_labels: Optional[int] = None, max_line_bytes: Optional[int] = None,
                       max_labels_per_doc: Optional[int] = None) -> Tuple[sp.csr_matrix, sp.csr_matrix, bool]:
    """Parse XC bytes into (X float32 CSR, Y float32 CSR, had_header)."""
    max_line, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.decode("latin-1")  # bytes 1:1; anything non-ASCII fails the grammar below
    if not text.strip(" \t\r\n"):
        raise DataFormatError.at(name, 0, "the file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start one
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if len(lines[0]) > max_line:
        raise DataFormatError.at(name, 1, "line too long")

    header = None
    first = _tokens(lines[0])
    if len(first) >= 2 and not any(":" in t for t in first):
        if len(first) != 3 or not all(_UINT.match(t) and _uint(t) <= _HEADER_MAX for t in first):
            raise DataFormatError.at(name, 1, f"expected a header 'N D L', found {lines[0][:40]!r}")
        header = [_uint(t) for t in first]
        if header[1] > _MAX_ID + 1 or header[2] > _MAX_ID + 1:
            raise DataFormatError.at(name, 1, f"header D and L must fit int32, found {lines[0][:40]!r}")
        body = lines[1:]
        if (n_features is not None and header[1] != n_features) or (n_labels is not None and header[2] != n_labels):
            raise DataFormatError.at(name, 1, "header dimensions differ from the caller's")
    else:
        body = lines
    line0 = 2 if header else 1

    fbound, lbound = _MAX_ID + 1, _MAX_ID + 1
    if header:
        fbound, lbound = header[1], header[2]
    if n_features is not None:
        fbound = min(fbound, n_features)
    if n_labels is not None:
        lbound = min(lbound, n_labels)

    xp, xi, xv, yp, yi = [0], [], [], [0], []
    for k, line in enumerate(body):
        lineno = line0 + k

        def fail(msg: str) -> None:
            raise DataFormatError.at(name, lineno, msg)

        if len(line) > max_line:
            fail("line too long")
        toks = _tokens(line)
        labels, feats = [], toks
        if line and line[0] not in " \t" and ":" not in toks[0]:
            if not _LABELS.match(toks[0]):
                fail(f"bad label field {toks[0][:40]!r}")
            labels = [_uint(t) for t in toks[0].split(",")]
            feats = toks[1:]
        row = {}
        for tok in feats:
            fid, sep, val = tok.partition(":")
            if not sep or not _UINT.match(fid) or _uint(fid) > _MAX_ID:
                fail(f"bad feature {tok[:40]!r}")
            if not _FLOAT.match(val) or val.startswith("+-") or val == "+":
                fail(f"{'non-finite' if _FLOAT_WORDS.match(val) else 'bad'} value {tok[:40]!r}")
            v = float(val)
            underflow = v == 0 and re.search(r"[1-9]", re.split(r"[eE]", val)[0])  # e.g. 2e-460
            if abs(v) > _F32_MAX or (v != 0 and abs(v) < _F32_TINY) or underflow:
                fail(f"value outside float32 {tok[:40]!r}")
            i = _uint(fid)
            if i >= fbound:
                fail(f"feature id {fid} out of range")
            if i in row:
                fail(f"feature id {fid} twice")
            row[i] = v
        for n_seen, lab in enumerate(labels):
            if lab > _MAX_ID or lab >= lbound:
                fail(f"label id {lab} out of range")
            if n_seen >= max_labels:
                fail("too many labels")
        if len(set(labels)) != len(labels):
            fail("label twice")
        for fid in sorted(row):
            xi.append(fid)
            xv.append(row[fid])
        yi.extend(sorted(labels))
        xp.append(len(xi))
        yp.append(len(yi))

    n = len(body)
    if header and n != header[0]:
        raise DataFormatError.at(name, 1, f"header promises {header[0]} documents, found {n}")
    max_f = max(xi) + 1 if xi else 0
    max_l = max(yi) + 1 if yi else 0
    D = n_features if n_features is not None else (header[1] if header else max_f)
    L = n_labels if n_labels is not None else (header[2] if header else max_l)
    X = sp.csr_matrix((np.array(xv, dtype=np.float32), np.array(xi, dtype=np.int32),
                       np.array(xp, dtype=np.int64)), shape=(n, D))
    Y = sp.csr_matrix((np.ones(len(yi), dtype=np.float32), np.array(yi, dtype=np.int32),
                       np.array(yp, dtype=np.int64)), shape=(n, L))
    return X, Y, header is not None
