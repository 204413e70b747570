"""Short CI version of the parser fuzzing (fuzz/ has the long runs).

Hypothesis generates XC files from the grammar and then mutates them byte by
byte; the native reader must either return the same matrices as the Python
reference parser or raise DataFormatError located at the same line with a
``name:line:`` prefix, never any other exception. The text readers get
arbitrary bytes and must return data or raise DataFormatError.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from xmc.data import DataFormatError, parse_xc_bytes, read_fasttext, read_jsonl  # noqa: E402
from xmc.data._reference import reference_parse_xc  # noqa: E402
from xmc.data.corpus import parse_fasttext_line  # noqa: E402

# Arbitrary bytes often hold blank lines: their counted-skip warnings are tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore::xmc.data.errors.DataWarning")

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- XC grammar ---------------------------------------------------------------
ids = st.one_of(st.integers(0, 40), st.sampled_from([2147483646, 2147483647, 10**12]))
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["1", "0", "-0.0", "+7", "1.", ".25", "3.2e-4", "1E3", "1e39", "1e-46", "1e-45", "inf",
                     "nan", "-", "+-1", "0x10", "16777217", "3.4028236e38", "0.10000000000000000000001"]))
feature = st.builds(lambda i, v: f"{i}:{v}", ids, values)
label_field = st.lists(ids, min_size=1, max_size=4).map(lambda ls: ",".join(map(str, ls)))
blank = st.sampled_from([" ", "\t", "  "])


@st.composite
def xc_line(draw) -> str:
    feats = draw(blank).join(draw(st.lists(feature, max_size=5)))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(label_field) + (draw(blank) + feats if feats else "")
    if kind == 1:
        return draw(blank) + feats
    return feats


@st.composite
def xc_file(draw) -> bytes:
    lines = draw(st.lists(xc_line(), min_size=1, max_size=6))
    if draw(st.booleans()):
        n = len(lines) if draw(st.integers(0, 4)) else draw(st.integers(0, 9))
        size = st.one_of(st.integers(0, 60), st.sampled_from([2147483647, 2147483648, 10**19, 10**25]))
        lines.insert(0, f"{n} {draw(size)} {draw(size)}")
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    return (nl.join(lines) + (nl if draw(st.booleans()) else "")).encode()


ALPHABET = b"0123456789:, \t\n\r.-+eEnaxif\xff\x00"


@st.composite
def mutated_xc_file(draw) -> bytes:
    blob = bytearray(draw(xc_file()))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(blob)))
        op = draw(st.integers(0, 2))
        if op == 0 and pos < len(blob):
            blob[pos] = draw(st.sampled_from(ALPHABET))
        elif op == 1:
            blob.insert(pos, draw(st.sampled_from(ALPHABET)))
        elif pos < len(blob):
            del blob[pos]
    return bytes(blob)


def check_against_reference(blob: bytes, n_features, n_labels, chunk: int) -> None:
    name = "fz.txt"
    try:
        rX, rY, _ = reference_parse_xc(blob, name, n_features=n_features, n_labels=n_labels)
        ref_line = None
    except DataFormatError as e:
        ref_line = e.line
    try:
        d = parse_xc_bytes(blob, name, n_features=n_features, n_labels=n_labels, threads=2,
                           min_chunk_bytes=chunk)
    except DataFormatError as e:
        assert e.line == ref_line, (blob, str(e))
        prefix = f"{name}:{e.line}: " if e.line > 0 else f"{name}: "
        assert str(e).startswith(prefix), str(e)
        assert e.file == name
        return
    assert ref_line is None, (blob, "native accepted what the reference rejects at line", ref_line)
    for a, b in ((d.X, rX), (d.Y, rY)):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data.astype(np.float32))


dims = st.one_of(st.none(), st.integers(0, 50))
chunks = st.sampled_from([1, 5, 64, 1 << 20])


@FAST
@given(xc_file(), dims, dims, chunks)
def test_generated_xc_files_match_reference(blob, n_features, n_labels, chunk):
    check_against_reference(blob, n_features, n_labels, chunk)


@FAST
@given(mutated_xc_file(), dims, dims, chunks)
def test_mutated_xc_files_match_reference(blob, n_features, n_labels, chunk):
    check_against_reference(blob, n_features, n_labels, chunk)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=200), chunks)
def test_arbitrary_bytes_never_escape_as_another_exception(blob, chunk):
    check_against_reference(blob, None, None, chunk)


def _short_id(v) -> str:
    return repr(v)[:24] if isinstance(v, bytes) else str(v)


@pytest.mark.parametrize("blob,line", ids=_short_id, argvalues=[
    (b"1 2 3\n0 0:1\n", None),                # header-only-looking first doc is fine
    (b"0:1\n1:1e39\n", 2),                    # float32 overflow
    (b"0:1\n1:nan\n", 2),                     # non-finite
    (b"0:1 0:2\n", 1),                        # repeated feature
    (b"2147483647:1\n", 1),                   # id beyond int32 columns
    (b"\n\r\n \t\n", 0),                      # whitespace only: whole-file error
    # Found by fuzz/python_readers_fuzz.py: the reference accepted these headers.
    (b"22222222222222222222223 7 2\n8\n", 1),  # N past the native header cap
    (b"1 2147483648 2\n0 0:1\n", 1),           # D past int32 columns
    (b"1 2147483647 2\n0 0:1\n", None),        # the largest D allowed
    # Digit strings Python's int() refuses (> 4300 digits) made the reference crash.
    (b"0" * 5000 + b"1 0:1\n", None),           # leading zeros: label id 1
    (b"1" * 5000 + b":1\n", 1),
    (b"3 " + b"9" * 5000 + b" 2\n", 1),
    (b"0:1\n13:.2e-460\n", 2),                # underflows even a double: still out of float32 range
    (b"0:0e-460\n", None),                     # a zero is a zero
])
def test_known_edge_inputs(blob, line):
    try:
        parse_xc_bytes(blob, "e.txt")
        got = None
    except DataFormatError as e:
        got = e.line
    assert got == line
    check_against_reference(blob, None, None, 3)


# ---- text readers ---------------------------------------------------------------
def _with_file(raw: bytes, fn):
    fd, path = tempfile.mkstemp(suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return fn(path), path
    finally:
        os.unlink(path)


def _assert_located(e: DataFormatError) -> None:
    assert e.file is not None and str(e).startswith(e.file), str(e)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                             st.dictionaries(st.text(max_size=6), c, max_size=3)),
                           max_leaves=8)
jsonl_docs = st.fixed_dictionaries({"text": json_values, "labels": json_values})


@st.composite
def jsonl_bytes(draw) -> bytes:
    lines = [json.dumps(o) for o in draw(st.lists(st.one_of(jsonl_docs, json_values), min_size=1, max_size=4))]
    raw = bytearray("\n".join(lines).encode())
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(raw)))
        raw.insert(pos, draw(st.sampled_from(b'{}[]",:\n\\0123456789\xff\xc3 ')))
    return bytes(raw)


@FAST
@given(jsonl_bytes())
def test_read_jsonl_only_raises_data_format_error(raw):
    try:
        data, _ = _with_file(raw, read_jsonl)
    except DataFormatError as e:
        _assert_located(e)
        return
    assert len(data.texts) == len(data.labels)
    assert all(isinstance(t, str) for t in data.texts)
    assert all(isinstance(x, str) for ls in data.labels for x in ls)


@pytest.mark.parametrize("line", [
    '{"text": "a", "labels": [1' + "1" * 5000 + "]}",        # int beyond Python's digit limit
    '{"text": "a", "labels": ' + "[" * 100000 + "}",          # nesting deeper than the stack
])
def test_read_jsonl_pathological_json_is_a_located_error(line):
    with pytest.raises(DataFormatError, match=r":1: expected a JSON object"):
        _with_file(line.encode() + b"\n", read_jsonl)


@FAST
@given(st.binary(max_size=300))
def test_read_fasttext_only_raises_data_format_error(raw):
    raw = raw.replace(b"\x00", b"") + b"\n__label__a x\n"
    try:
        data, _ = _with_file(raw, read_fasttext)
    except DataFormatError as e:
        _assert_located(e)
        return
    assert len(data.texts) == len(data.labels) >= 1
    assert data.labels[-1] == ["a"] and data.texts[-1] == "x"


@FAST
@given(st.lists(st.one_of(st.text(max_size=6), st.just("__label__"), st.text(max_size=6).map("__label__{}".format)),
                max_size=8), st.sampled_from([" ", "\t", "  "]))
def test_parse_fasttext_line_against_reference(tokens, sep):
    line = sep.join(tokens)
    words = line.split()
    want_labels = []
    for w in words:
        if w.startswith("__label__") and w[9:] and w[9:] not in want_labels:
            want_labels.append(w[9:])
    if any(w == "__label__" for w in words):
        with pytest.raises(DataFormatError, match=r"^f:3: "):
            parse_fasttext_line(line, "f", 3)
        return
    text, labels = parse_fasttext_line(line, "f", 3)
    assert labels == want_labels
    assert text == " ".join(w for w in words if not w.startswith("__label__"))
