"""atheris fuzz target for the Python-facing readers.

The first byte picks the target, the rest is the file:
  0  xmc.data.read_jsonl      must return TextData or raise DataFormatError
  1  xmc.data.read_fasttext   same
  2  xmc.data.parse_xc_bytes  differential against xmc.data._reference: same
                              matrices, or DataFormatError at the same line

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

    from xmc.data import DataFormatError, parse_xc_bytes, read_fasttext, read_jsonl
    from xmc.data._reference import reference_parse_xc

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


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, raw = data[0] % 3, data[1:]
    if target == 0:
        _text_reader(read_jsonl, raw)
    elif target == 1:
        _text_reader(read_fasttext, raw)
    else:
        _xc(raw)


def main() -> None:
    try:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        os.unlink(_PATH)


if __name__ == "__main__":
    main()
