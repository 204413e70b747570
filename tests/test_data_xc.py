"""The native XC reader/writer against known matrices, the Python reference
parser and the real datasets; every malformed-input case gives a located error."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA_ROOT
import scipy.sparse as sp

from xmc.data import DataFormatError, parse_xc_bytes, read_xc, write_xc
from xmc.data._reference import reference_parse_xc

DATA = DATA_ROOT
REAL_FILES = sorted(DATA.glob("*/*_xc.txt")) if DATA.is_dir() else []


def assert_same_csr(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data.astype(np.float32), b.data.astype(np.float32))


def random_matrices(rng, n, D, L, empty_frac=0.2):
    xs, ys = [], []
    for _ in range(n):
        kf = 0 if rng.random() < empty_frac else int(rng.integers(1, min(D, 12) + 1))
        kl = 0 if rng.random() < empty_frac else int(rng.integers(1, min(L, 5) + 1))
        xs.append((np.sort(rng.choice(D, kf, replace=False)),
                   rng.standard_normal(kf).astype(np.float32) * np.float32(10) ** rng.integers(-3, 4, kf)))
        ys.append(np.sort(rng.choice(L, kl, replace=False)))
    X = sp.lil_matrix((n, D), dtype=np.float32)
    Y = sp.lil_matrix((n, L), dtype=np.float32)
    for r, ((fi, fv), li) in enumerate(zip(xs, ys)):
        for i, v in zip(fi, fv):
            X[r, i] = v if v != 0 else np.float32(1)
        for i in li:
            Y[r, i] = 1
    return X.tocsr(), Y.tocsr()


def render(X, Y, rng, header=True, crlf=False, trailing_newline=True) -> bytes:
    """Text of (X, Y) in every spelling the format allows: shuffled features,
    tabs, a leading blank or no label field for label-less documents."""
    out = [f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}"] if header else []
    for r in range(X.shape[0]):
        fi = X.indices[X.indptr[r]:X.indptr[r + 1]]
        fv = X.data[X.indptr[r]:X.indptr[r + 1]]
        li = Y.indices[Y.indptr[r]:Y.indptr[r + 1]]
        order = rng.permutation(len(fi))
        sep = "\t" if rng.random() < 0.2 else " "
        feats = sep.join(f"{fi[k]}:{np.format_float_positional(fv[k]) if rng.random() < .5 else repr(float(fv[k]))}"
                         for k in order)
        if len(li):
            line = ",".join(str(x) for x in rng.permutation(li)) + (sep + feats if feats else "")
        elif feats and rng.random() < 0.5:
            line = feats  # no label field at all: the first token holds a ':'
        else:
            line = " " + feats
        out.append(line)
    text = ("\r\n" if crlf else "\n").join(out)
    return (text + ("\r\n" if crlf else "\n") if trailing_newline else text).encode()


@pytest.mark.parametrize("seed,header,crlf,trailing", [
    (0, True, False, True), (1, False, False, True), (2, True, True, False), (3, False, False, False)])
def test_native_matches_known_matrices_and_reference(seed, header, crlf, trailing):
    rng = np.random.default_rng(seed)
    X, Y = random_matrices(rng, 300, 50, 20)
    if not header:  # without a header the shape comes from the largest ids
        X = X[:, :X.indices.max() + 1].tocsr()
        Y = Y[:, :Y.indices.max() + 1].tocsr()
    blob = render(X, Y, rng, header, crlf, trailing)
    rX, rY, had = reference_parse_xc(blob)
    assert had == header
    assert_same_csr(rX, X)
    assert_same_csr(rY, Y)
    # Tiny chunks put chunk boundaries everywhere; the result must not change.
    for threads, chunk in [(1, 1 << 20), (4, 64), (3, 1)]:
        d = parse_xc_bytes(blob, threads=threads, min_chunk_bytes=chunk)
        assert_same_csr(d.X, X)
        assert_same_csr(d.Y, Y)
        assert d.X.dtype == np.float32 and d.Y.dtype == np.float32 and d.X.has_sorted_indices


def test_write_read_roundtrip_is_exact(tmp_path):
    rng = np.random.default_rng(7)
    X = sp.random(500, 2000, density=0.01, format="csr", dtype=np.float32, random_state=1)
    X.data = (rng.standard_normal(X.nnz) * 10.0 ** rng.integers(-20, 20, X.nnz)).astype(np.float32)
    Y = sp.random(500, 300, density=0.01, format="csr", random_state=2)
    Y.data[:] = 1
    for header in (True, False):
        path = tmp_path / f"rt_{header}.txt"
        write_xc(path, X, Y, header=header)
        d = read_xc(path, n_features=2000, n_labels=300)
        assert_same_csr(d.X, X)
        assert_same_csr(d.Y, Y.astype(np.float32))
        rX, rY, had = reference_parse_xc(path.read_bytes(), n_features=2000, n_labels=300)
        assert had == header
        assert_same_csr(rX, X)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_writer_is_atomic_on_bad_input(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("old content\n")
    X = sp.csr_matrix(np.array([[1.0, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match="row 0 holds a non-finite value"):
        write_xc(path, X, sp.csr_matrix((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="X has 1 rows but Y has 2"):
        write_xc(path, sp.csr_matrix((1, 2)), sp.csr_matrix((2, 2)))
    assert path.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_dimensions_from_body_header_and_caller():
    body = b"0,4 1:1 9:2\n 3:1\n"
    d = parse_xc_bytes(body)
    assert (d.n_features, d.n_labels, d.n_docs) == (10, 5, 2)
    d = parse_xc_bytes(body, n_features=100, n_labels=7)
    assert d.X.shape == (2, 100) and d.Y.shape == (2, 7)
    d = parse_xc_bytes(b"2 50 6\n" + body)
    assert d.X.shape == (2, 50) and d.Y.shape == (2, 6)
    with pytest.raises(DataFormatError, match=r"<bytes>:1: feature id 9 is outside the range \[0, 5\) set by "
                                              r"n_features=5 given by the caller"):
        parse_xc_bytes(body, n_features=5)


BAD_CASES = [
    # (file body, 1-based line, words the message must hold)
    (b"2 5 3\n0 1:1\n1 3:abc\n", 3, ["expected a number after ':'", "'3:abc'"]),
    (b"0 1:1 3\n", 1, ["expected a feature 'id:value'", "found '3'"]),
    (b"0 1:1\n1 :1\n", 2, ["expected a feature 'id:value'", "':1'"]),
    (b"0 -2:1\n", 1, ["non-negative integer id", "'-2:1'"]),
    (b"-2:1\n", 1, ["non-negative integer id", "'-2:1'"]),
    (b"0 x:1\n", 1, ["expected a feature", "'x:1'"]),
    (b"3 5 3\n0 1:1\n1 2:1\n2,3 1:1\n", 4, ["label id 3 is outside the range [0, 3)", "header's L=3"]),
    (b"2 5 3\n0 5:1\n1 2:1\n", 2, ["feature id 5 is outside the range [0, 5)", "header's D=5"]),
    (b"3 5 3\n0 1:1\n1 2:1\n", 1, ["header promises 3 documents, found 2"]),
    (b"1 5 3\n0 1:1\n1 2:1\n", 1, ["header promises 1 documents, found 2"]),
    (b"2 five 3\n0 1:1\n1 2:1\n", 1, ["expected a header 'N D L'", "'2 five 3'"]),
    (b"2 5\n0 1:1\n1 2:1\n", 1, ["expected a header 'N D L'"]),
    (b"0 1:1\n1 2:0.5 7:", 2, ["expected a number after ':'", "'7:'"]),
    (b"", 0, ["the file is empty"]),
    (b"\n \n", 0, ["the file is empty"]),
    (b"0 1:nan\n", 1, ["finite", "'1:nan'"]),
    (b"0 1:1\n0 1:-inf\n", 2, ["finite", "'1:-inf'"]),
    (b"0 1:1e39\n", 1, ["float32 range"]),
    (b"0 1:1 1:2\n", 1, ["feature id 1 appears twice"]),
    (b"2,2 1:1\n", 1, ["label id 2 appears twice"]),
    (b"0,,1 1:1\n", 1, ["expected the label field", "'0,,1'"]),
    (b"0, 1:1\n", 1, ["expected the label field", "'0,'"]),
    (b"a,b 1:1\n", 1, ["expected the label field", "'a,b'"]),
    (b"0 1:1\n0 1:\xff\xfe\n", 2, ["expected a number", "\\xff\\xfe"]),
    (b"0 99999999999:1\n", 1, ["feature id '99999999999' does not fit a 32-bit column index"]),
    (b"0,99999999999 1:1\n", 1, ["label id '99999999999' does not fit a 32-bit column index"]),
    (b"-1,2 1:1\n", 1, ["expected the label field", "'-1,2'"]),
    (b"0 1:" + b"9" * 100 + b"x\n", 1, ["expected a number", "..."]),
]


@pytest.mark.parametrize("body,line,words", BAD_CASES)
def test_malformed_input_names_file_line_and_token(tmp_path, body, line, words):
    path = tmp_path / "bad_xc.txt"
    path.write_bytes(body)
    with pytest.raises(DataFormatError) as err:
        read_xc(path)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert msg.startswith(f"{path}:{line}: " if line else f"{path}: "), msg
    assert err.value.file == str(path) and err.value.line == line
    for w in words:
        assert w in msg, msg
    assert len(msg) < len(str(path)) + 200  # the bad token is shown truncated
    # The reference rejects the same input at the same line, and chunking does not move it.
    with pytest.raises(DataFormatError) as ref_err:
        reference_parse_xc(body, str(path))
    assert ref_err.value.line == line
    with pytest.raises(DataFormatError) as chunked:
        parse_xc_bytes(body, str(path), threads=3, min_chunk_bytes=1)
    assert chunked.value.line == line


def test_first_error_in_file_is_reported_across_chunks():
    lines = [b"0 1:1"] * 200
    lines[57] = b"0 1:oops"
    lines[150] = b"0 x:1"
    err = pytest.raises(DataFormatError, parse_xc_bytes, b"\n".join(lines), "f.txt", threads=4,
                        min_chunk_bytes=16)
    assert str(err.value).startswith("f.txt:58: ")


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_xc(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError):
        read_xc(tmp_path)
    (tmp_path / "ok.txt").write_bytes(b"0 1:1\n")
    with pytest.raises(ValueError, match="n_features must be >= 0"):
        read_xc(tmp_path / "ok.txt", n_features=-3)


@pytest.mark.skipif(not REAL_FILES, reason=f"no *_xc.txt files under {DATA} (set XMC_DATA)")
@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_real_datasets_match_reference(path):
    d = read_xc(path)
    rX, rY, had = reference_parse_xc(path.read_bytes(), str(path))
    assert had
    assert_same_csr(d.X, rX)
    assert_same_csr(d.Y, rY)
    n, D, L = (int(t) for t in path.read_text().split("\n", 1)[0].split())
    assert d.X.shape == (n, D) and d.Y.shape == (n, L)
    assert d.Y.nnz > 0 and d.X.nnz > 0


def test_float_values_are_correctly_rounded():
    """The reader's short-number fast path and std::from_chars must agree with
    correctly rounded float32 parsing on every spelling of many values."""
    rng = np.random.default_rng(11)
    vals = np.concatenate([rng.random(3000), rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000),
                           rng.integers(0, 2**26, 500).astype(np.float64)])
    strings = []
    for i, v in enumerate(vals):
        strings += [repr(float(v)), repr(float(np.float32(v))), f"{v:.6f}", f"{v:.9e}", f"{v:.4E}", f"{v:.17g}"]
    # Exact float32 midpoints round to even; 19+ digit and subnormal values take the slow path.
    strings += ["16777217", "16777219", "0.5", "-0", "1.", ".25", "+.5", "1e-40", "3.4028234e38",
                "0.1000000000000000000055511151231257827", "7e22", "7e23", "123456789012345678901234"]
    blob = "\n".join(f"0 {k}:{s}" for k, s in enumerate(strings)).encode()
    d = parse_xc_bytes(blob, threads=2, min_chunk_bytes=4096)
    expected = np.array([np.float32(float(s)) for s in strings], dtype=np.float32)
    np.testing.assert_array_equal(d.X.indptr, np.arange(len(strings) + 1))  # explicit zeros are kept
    np.testing.assert_array_equal(d.X.indices, np.arange(len(strings)))
    np.testing.assert_array_equal(d.X.data, expected)
    assert d.X.data[strings.index("16777217")] == 16777216 and d.X.data[strings.index("16777219")] == 16777220


def test_mutated_files_agree_with_reference():
    """Random byte edits of a valid file: the native reader and the reference
    accept the same inputs with the same result, or reject them at the same line."""
    rng = np.random.default_rng(5)
    X, Y = random_matrices(rng, 12, 30, 10)
    base = bytearray(render(X, Y, rng, header=True))
    alphabet = b"0123456789:, \t\n.-+eExna\r\xff"
    for trial in range(300):
        blob = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(blob)))
            op = rng.integers(0, 3)
            ch = alphabet[int(rng.integers(0, len(alphabet)))]
            if op == 0:
                blob[pos] = ch
            elif op == 1:
                blob.insert(pos, ch)
            else:
                del blob[pos]
        blob = bytes(blob)
        try:
            rX, rY, _ = reference_parse_xc(blob, "m")
            ref_line = None
        except DataFormatError as e:
            ref_line = e.line
        try:
            d = parse_xc_bytes(blob, "m", threads=2, min_chunk_bytes=int(rng.integers(1, 200)))
            nat_line = None
        except DataFormatError as e:
            nat_line = e.line
        assert nat_line == ref_line, (trial, blob)
        if nat_line is None:
            assert_same_csr(d.X, rX)
            assert_same_csr(d.Y, rY)
