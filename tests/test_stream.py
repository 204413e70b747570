"""Chunked reading (xmc.data.stream) and chunked prediction files: the same data, the same
errors at the same lines, and the same prediction files as reading everything at once."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.sparse as sp

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_fuzz_parsers import mutated_xc_file, xc_file  # noqa: E402  (the XC grammar of the fuzz tests)

from xmc.data import DataFormatError, LabelVocab, load_corpus, read_xc  # noqa: E402
from xmc.data.predictions import PredictionWriter, write_predictions  # noqa: E402
from xmc.data.stream import iter_corpus  # noqa: E402
from xmc.utils.modeldir import load_arrays  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::xmc.data.errors.DataWarning")
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None)


def _outcome(fn):
    """('ok', value) or ('error', line) of a DataFormatError."""
    try:
        return "ok", fn()
    except DataFormatError as e:
        return "error", e.line


def _stacked(chunks, n_labels):
    chunks = list(chunks)
    Xs = sp.vstack([c.X for c in chunks]).tocsr() if chunks else None
    width = max([n_labels or 0] + [c.Y.shape[1] for c in chunks])
    Ys = sp.vstack([sp.csr_matrix((c.Y.data, c.Y.indices, c.Y.indptr), shape=(c.Y.shape[0], width))
                    for c in chunks]).tocsr() if chunks else None
    return Xs, Ys, [c.X.shape[0] for c in chunks]


def check_xc_chunks(blob: bytes, tmp_path, n_features, n_labels, chunk_docs: int) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(blob)
    whole = _outcome(lambda: read_xc(path, n_features=n_features, n_labels=n_labels))
    try:
        streamed = _outcome(lambda: _stacked(iter_corpus(path, "xc", chunk_docs=chunk_docs, n_features=n_features,
                                                         n_labels=n_labels), n_labels))
    except ValueError as e:  # no header and no n_features: refused by design, whatever the content
        assert n_features is None and "n_features" in str(e), str(e)
        return
    assert streamed[0] == whole[0], (blob, whole, streamed)
    if whole[0] == "error":
        assert streamed[1] == whole[1], (blob, "error lines differ", whole[1], streamed[1])
        return
    data, (X, Y, sizes) = whole[1], streamed[1]
    assert all(s == chunk_docs for s in sizes[:-1]) and all(s <= chunk_docs for s in sizes[-1:])  # full but last
    if X is None:
        assert data.n_docs == 0
        return
    assert X.shape == data.X.shape
    assert (X != data.X).nnz == 0
    Y = Y[:, :data.Y.shape[1]] if Y.shape[1] > data.Y.shape[1] else Y
    width = max(Y.shape[1], data.Y.shape[1])
    pad = lambda m: sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))  # noqa: E731
    assert (pad(Y) != pad(data.Y)).nnz == 0


dims = st.one_of(st.none(), st.integers(0, 50))
chunk_sizes = st.sampled_from([1, 2, 3, 1000])


@SETTINGS
@given(xc_file(), dims, dims, chunk_sizes)
def test_xc_chunks_equal_the_whole_file(tmp_path_factory, blob, n_features, n_labels, chunk_docs):
    check_xc_chunks(blob, tmp_path_factory.mktemp("xc"), n_features, n_labels, chunk_docs)


@SETTINGS
@given(mutated_xc_file(), dims, dims, chunk_sizes)
def test_mutated_xc_chunks_fail_at_the_same_line(tmp_path_factory, blob, n_features, n_labels, chunk_docs):
    check_xc_chunks(blob, tmp_path_factory.mktemp("xc"), n_features, n_labels, chunk_docs)


@pytest.mark.parametrize("blob,line", [
    (b"3 4 2\n0 1:1\n\n1 0:2\n", None),                 # a blank line is an empty document, in any chunk
    (b"\n\n", 0),                                        # whitespace only: an empty file
    (b"2 4 2\n0 1:1\n", 1),                              # the header promises more documents
    (b"2 4 2\n0 1:1\n\xef\xbb\xbf1 0:1\n", 3),           # a byte-order mark inside the file
    (b"2 4 2\n0 1:1\n1 2 3\n", 3),                       # a second header-like line
    (b"2 4 2\n0 1:1\n1 9:1\n", 3),                       # a feature id past the header's D
    (b"\r\x0c", 1),                                       # a form feed is content, not a blank (fuzz find)
    (b"\r\r\n[\n", 1),                                     # a stray CR in a blank-looking line (fuzz find)
    (b"\r\r\n\n", 0),                                      # ... but a file of whitespace only is empty
    (b"1 0:1\n\n \r \n", 3),                                # ... and after content it is an error at once
    (b"2 4 3\n2 4 3\n0\xce2 1:0\n", 2),                       # a header-like line heading a chunk (fuzz find)
    (b"\n\r\r\n\x00 e\n", 2),                                # the stray CR comes first, not the next chunk's
    (b"\n\r\r\n\r \r\r\n1 0:1\n", 2),                        # a blank-looking "\r \r" is not a header (fuzz)
])
def test_xc_chunk_edge_cases(blob, line, tmp_path):
    for chunk_docs in (1, 2, 100):
        check_xc_chunks(blob, tmp_path, 4, None, chunk_docs)
        if line is not None:
            path = tmp_path / "data.txt"
            with pytest.raises(DataFormatError) as err:
                list(iter_corpus(path, "xc", chunk_docs=chunk_docs, n_features=4))
            assert err.value.line == line and str(err.value).startswith(str(path))


def test_headerless_xc_needs_the_feature_count(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"0 1:1\n1 0:2\n")
    with pytest.raises(ValueError, match="n_features"):
        list(iter_corpus(path, "xc", chunk_docs=1))
    chunks = list(iter_corpus(path, "xc", chunk_docs=1, n_features=5))
    assert [c.X.shape for c in chunks] == [(1, 5), (1, 5)]


# ---- text formats ---------------------------------------------------------------------------

words = st.text(alphabet="abc xyz\t", max_size=12)
labels = st.lists(st.sampled_from(["a", "b", "c", "a b"]), max_size=3)


@st.composite
def text_corpus(draw):
    """(format, files) of a small corpus, sometimes broken on one line."""
    fmt = draw(st.sampled_from(["fasttext", "jsonl", "text"]))
    docs = draw(st.lists(st.tuples(words, labels), max_size=8))
    if fmt == "fasttext":
        lines = [" ".join([f"__label__{x}" for x in ls if " " not in x] + [t.strip()]) for t, ls in docs]
        if draw(st.booleans()) and lines:
            lines.insert(draw(st.integers(0, len(lines))), "__label__ broken")
        return fmt, {"data.txt": "\n".join(lines) + "\n"}
    if fmt == "jsonl":
        lines = [json.dumps({"text": t, "labels": ls}) for t, ls in docs]
        if draw(st.booleans()) and lines:
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["{", "[]", '{"text": 1}'])))
        return fmt, {"data.txt": "\n".join(lines) + "\n"}
    texts = [t.replace("\t", " ") for t, _ in docs]
    label_lines = [" ".join(ls) for _, ls in docs]
    if draw(st.booleans()):
        label_lines.append("extra")  # one line more than the texts file
    return fmt, {"data.txt": "\n".join(texts) + "\n" if texts else "", "labels.txt": "\n".join(label_lines) +
                 ("\n" if label_lines else "")}


@SETTINGS
@given(text_corpus(), chunk_sizes)
def test_text_chunks_equal_the_whole_file(tmp_path_factory, corpus, chunk_docs):
    fmt, files = corpus
    d = tmp_path_factory.mktemp("text")
    for name, content in files.items():
        (d / name).write_text(content, encoding="utf-8")
    labels_path = d / "labels.txt" if "labels.txt" in files else None
    whole = _outcome(lambda: load_corpus(d / "data.txt", format=fmt, labels_path=labels_path))
    chunks = _outcome(lambda: list(iter_corpus(d / "data.txt", format=fmt, labels_path=labels_path,
                                               chunk_docs=chunk_docs)))
    assert chunks[0] == whole[0] and (whole[0] == "ok" or chunks[1] == whole[1]), (files, whole, chunks)
    if whole[0] == "ok":
        assert all(len(c) == chunk_docs for c in chunks[1][:-1]) and all(len(c) <= chunk_docs for c in chunks[1])
        assert [t for c in chunks[1] for t in c.texts] == whole[1].texts
        assert [ls for c in chunks[1] for ls in c.labels] == whole[1].labels


# ---- prediction files -------------------------------------------------------------------------

def test_prediction_writer_in_chunks_equals_one_write(tmp_path):
    rng = np.random.default_rng(0)
    vocab = LabelVocab([f"label{i}" for i in range(30)])
    ids = rng.integers(-1, 30, size=(101, 5)).astype(np.int32)
    scores = rng.random((101, 5)).astype(np.float32)
    whole_txt, whole_npz = write_predictions(tmp_path / "whole.txt", ids, scores, vocab)
    with PredictionWriter(tmp_path / "chunks.txt", vocab) as out:
        for lo in range(0, 101, 17):
            out.write(ids[lo:lo + 17], scores[lo:lo + 17])
    assert (tmp_path / "chunks.txt").read_bytes() == whole_txt.read_bytes()
    a, b = load_arrays(tmp_path / "chunks.npz"), load_arrays(whole_npz)
    for name in ("ids", "scores", "label_names"):
        np.testing.assert_array_equal(a[name], b[name])
    assert sorted(os.listdir(tmp_path)) == ["chunks.npz", "chunks.txt", "whole.npz", "whole.txt"]


def test_interrupted_prediction_leaves_the_old_files(tmp_path):
    vocab = LabelVocab(["a", "b"])
    write_predictions(tmp_path / "p.txt", np.array([[0, 1]]), np.array([[0.5, 0.25]], dtype=np.float32), vocab)
    before = (tmp_path / "p.txt").read_bytes(), (tmp_path / "p.npz").read_bytes()
    with pytest.raises(RuntimeError):
        with PredictionWriter(tmp_path / "p.txt", vocab) as out:
            out.write(np.array([[1, 0]]), np.array([[0.9, 0.1]], dtype=np.float32))
            raise RuntimeError("interrupted")
    assert ((tmp_path / "p.txt").read_bytes(), (tmp_path / "p.npz").read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["p.npz", "p.txt"]  # no temporary file left behind
