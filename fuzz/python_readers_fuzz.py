"""atheris fuzz target for the Python-facing readers.

The first byte picks the target, the rest is the file:
  0  xmc.data.read_jsonl      must return TextData or raise DataFormatError
  1  xmc.data.read_fasttext   same
  2  xmc.data.parse_xc_bytes  differential against xmc.data._reference: same
                              matrices, or DataFormatError at the same line
  3  xmc.data.stream.iter_corpus on XC, in chunks of 1-3 documents (the next byte
                              picks the size and whether n_features is given):
                              the stacked chunks equal read_xc, or both fail at
                              the same line
  4  xmc.data.stream.iter_corpus on JSON lines / fastText in chunks: the same
                              documents as read_jsonl / read_fasttext, or the same error line

Any other exception, or a disagreement, is a crash atheris reports with the input.

    pip install --target /tmp/atheris-pkg atheris     # needs clang (apt-get install clang)
    PYTHONPATH=/tmp/atheris-pkg:. python fuzz/python_readers_fuzz.py -runs=300000 /tmp/py-corpus
"""
from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import numpy as np

    import scipy.sparse as sp

    from xmc.data import DataFormatError, parse_xc_bytes, read_fasttext, read_jsonl, read_xc
    from xmc.data._reference import reference_parse_xc
    from xmc.data.stream import iter_corpus

# One scratch file reused for every input: the readers take paths.
_FD, _PATH = tempfile.mkstemp(prefix="xmc-fuzz-", suffix=".txt", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.close(_FD)


def _write(raw: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(raw)


def _text_reader(reader, raw: bytes) -> None:
    _write(raw)
    try:
        data = reader(_PATH)
    except DataFormatError as e:
        if not str(e).startswith(_PATH):
            raise AssertionError(f"error not located: {e}")
        return
    assert len(data.texts) == len(data.labels)
    assert all(isinstance(t, str) for t in data.texts)
    assert all(isinstance(x, str) and x for ls in data.labels for x in ls) or reader is read_jsonl


def _xc(raw: bytes) -> None:
    try:
        rX, rY, _ = reference_parse_xc(raw, "f")
        ref_line = None
    except DataFormatError as e:
        ref_line = e.line
    try:
        d = parse_xc_bytes(raw, "f", threads=2, min_chunk_bytes=7)
    except DataFormatError as e:
        if e.line != ref_line:
            raise AssertionError(f"native line {e.line} vs reference {ref_line}: {e}")
        return
    if ref_line is not None:
        raise AssertionError(f"native accepted, reference rejected at line {ref_line}")
    for a, b in ((d.X, rX), (d.Y, rY)):
        assert a.shape == b.shape, (a.shape, b.shape)
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.data, b.data.astype(np.float32))


def _outcome(fn):
    try:
        return "ok", fn()
    except DataFormatError as e:
        if not str(e).startswith(_PATH):
            raise AssertionError(f"error not located: {e}")
        return "error", e.line


def _xc_chunks(option: int, raw: bytes) -> None:
    _write(raw)
    chunk, n_features = 1 + option % 3, (None if option & 4 else 40)
    whole = _outcome(lambda: read_xc(_PATH, n_features=n_features))
    try:
        chunks = _outcome(lambda: list(iter_corpus(_PATH, "xc", chunk_docs=chunk, n_features=n_features)))
    except ValueError as e:  # no header and no n_features: refused by design
        if n_features is not None or "n_features" not in str(e):
            raise
        return
    assert whole[0] == chunks[0] and (whole[0] == "ok" or whole[1] == chunks[1]), (whole, chunks)
    if whole[0] == "error" or not chunks[1]:
        return
    X = sp.vstack([c.X for c in chunks[1]]).tocsr()
    assert X.shape == whole[1].X.shape and (X != whole[1].X).nnz == 0
    assert sum(c.Y.nnz for c in chunks[1]) == whole[1].Y.nnz
    assert all(c.X.shape[0] == chunk for c in chunks[1][:-1])


def _text_chunks(option: int, raw: bytes) -> None:
    _write(raw)
    fmt, reader = ("jsonl", read_jsonl) if option & 1 else ("fasttext", read_fasttext)
    whole = _outcome(lambda: reader(_PATH))
    chunks = _outcome(lambda: list(iter_corpus(_PATH, fmt, chunk_docs=1 + option % 3)))
    assert whole[0] == chunks[0] and (whole[0] == "ok" or whole[1] == chunks[1]), (whole, chunks)
    if whole[0] == "ok":
        assert [t for c in chunks[1] for t in c.texts] == whole[1].texts
        assert [ls for c in chunks[1] for ls in c.labels] == whole[1].labels


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    target, raw = data[0] % 5, data[1:]
    if target == 0:
        _text_reader(read_jsonl, raw)
    elif target == 1:
        _text_reader(read_fasttext, raw)
    elif target == 2:
        _xc(raw)
    elif target == 3:
        _xc_chunks(raw[0], raw[1:])
    else:
        _text_chunks(raw[0], raw[1:])


def main() -> None:
    try:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        os.unlink(_PATH)


if __name__ == "__main__":
    main()
