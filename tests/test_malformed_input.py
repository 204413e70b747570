"""The malformed-input cases of the table in docs/data-formats.md that test_data_xc.py and
test_data_text.py do not already cover: input limits, BOM / CRLF / blank lines,
counted skips (DataWarning), empty documents, unseen labels, feature dimensions."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

try:  # this checkout's CLI: an editable install elsewhere maps xmc.cli to its own cli/
    from cli.main import cli
except ImportError:
    from xmc.cli.main import cli
from xmc.data import (DataFormatError, TextData, XCData, detect_format, load_corpus, parse_xc_bytes, read_fasttext,
                      read_jsonl, read_text_pair, read_xc, write_xc)
from xmc.data._reference import reference_parse_xc
from xmc.data.errors import DataWarning
from xmc.data.predictions import evaluate_prediction_file, write_predictions
from xmc.linear import PLTParams
from xmc.linear.pipeline import Pipeline

TEXT_READERS = {
    "fasttext": (read_fasttext, "__label__a {}\n"),
    "jsonl": (read_jsonl, '{{"text": "{}", "labels": ["a"]}}\n'),
}


def small_xc(n=60, D=20, L=4, seed=0, empty_rows=()):
    """Each label owns features; a few noisy ones make it a real (but easy) problem."""
    rng = np.random.default_rng(seed)
    X = sp.lil_matrix((n, D), dtype=np.float32)
    Y = sp.lil_matrix((n, L), dtype=np.float32)
    for r in range(n):
        lab = r % L
        Y[r, lab] = 1
        if r in empty_rows:
            continue
        for f in (lab * 3, lab * 3 + 1, int(rng.integers(3 * L, D))):
            X[r, f] = 1.0
    return X.tocsr(), Y.tocsr()


def messages(record) -> str:
    return "\n".join(str(w.message) for w in record if issubclass(w.category, DataWarning))


# ---- limits ----------------------------------------------------------------------
@pytest.mark.parametrize("threads,chunk", [(1, 1 << 20), (3, 1)])
def test_xc_line_longer_than_limit_is_refused(threads, chunk):
    ok = b"0 1:1 2:1\n"  # 9 bytes without its newline
    long_line = b"1 " + b" ".join(b"%d:1" % i for i in range(3, 40)) + b"\r\n"
    body = ok * 3 + long_line + ok
    with pytest.raises(DataFormatError) as err:
        parse_xc_bytes(body, "f.txt", threads=threads, min_chunk_bytes=chunk, max_line_bytes=50)
    assert err.value.line == 4
    msg = str(err.value)
    assert msg.startswith("f.txt:4: the line is longer than 50 bytes") and "--max-line-bytes" in msg
    assert "XMC_MAX_LINE_BYTES" in msg
    with pytest.raises(DataFormatError) as ref:
        reference_parse_xc(body, "f.txt", max_line_bytes=50)
    assert ref.value.line == 4
    # Exactly at the limit is fine, CRLF not counted; the limit covers the header line too.
    assert parse_xc_bytes(ok * 2 + b"0 1:1 2:1\r\n", max_line_bytes=9, threads=threads).n_docs == 3
    with pytest.raises(DataFormatError, match=r"^h:1: the line is longer than 4 bytes"):
        parse_xc_bytes(b"1 30 4\n0 1:1\n", "h", max_line_bytes=4)
    with pytest.raises(DataFormatError, match=r"^h:1: the line is longer than 4 bytes"):
        parse_xc_bytes(b"0 1:1", "h", max_line_bytes=4)  # last line without a newline


def test_xc_labels_per_document_limit(tmp_path):
    path = tmp_path / "many.txt"
    path.write_bytes(b"0,1 1:1\n0,1,2,3,4 1:1\n")
    assert read_xc(path, max_labels_per_doc=5).Y.nnz == 7
    with pytest.raises(DataFormatError) as err:
        read_xc(path, max_labels_per_doc=4)
    assert str(err.value).startswith(f"{path}:2: more than 4 labels on this line (max_labels_per_doc)")
    assert "--max-labels-per-doc" in str(err.value)
    with pytest.raises(DataFormatError) as ref:
        reference_parse_xc(path.read_bytes(), max_labels_per_doc=4)
    assert ref.value.line == 2


def test_limits_fall_back_to_environment_then_default(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_bytes(b"0,1,2 1:1 2:1 3:1\n")
    assert read_xc(path).n_docs == 1  # defaults: 64 MiB, 100,000 labels
    monkeypatch.setenv("XMC_MAX_LABELS_PER_DOC", "2")
    with pytest.raises(DataFormatError, match="more than 2 labels"):
        read_xc(path)
    assert read_xc(path, max_labels_per_doc=3).n_docs == 1  # the keyword argument wins
    monkeypatch.setenv("XMC_MAX_LINE_BYTES", "5")
    with pytest.raises(DataFormatError, match="longer than 5 bytes"):
        load_corpus(path, format="xc", max_labels_per_doc=3)
    monkeypatch.setenv("XMC_MAX_LINE_BYTES", "lots")
    with pytest.raises(ValueError, match=r"XMC_MAX_LINE_BYTES='lots': expected a positive integer"):
        read_xc(path)
    monkeypatch.delenv("XMC_MAX_LINE_BYTES")
    with pytest.raises(ValueError, match="max_line_bytes must be >= 1, got 0"):
        load_corpus(path, max_line_bytes=0)


@pytest.mark.parametrize("reader", ["fasttext", "jsonl", "text_pair", "detect"])
def test_text_line_longer_than_limit_is_refused(tmp_path, reader):
    p = tmp_path / "t.txt"
    fn, template = TEXT_READERS.get(reader, (read_fasttext, "__label__a {}\n"))
    p.write_text(template.format("short") + template.format("x" * 200) + "\n", encoding="utf-8")
    labels = tmp_path / "l.txt"
    labels.write_text("a\na\nb\n")
    with pytest.raises(DataFormatError) as err:
        if reader == "text_pair":
            read_text_pair(p, labels, max_line_bytes=100)
        elif reader == "detect":
            detect_format(p, max_line_bytes=100)
        else:
            fn(p, max_line_bytes=100)
    assert str(err.value).startswith(f"{p}:2: the line is longer than 100 bytes (max_line_bytes)")
    assert "--max-line-bytes" in str(err.value)


@pytest.mark.parametrize("reader", ["fasttext", "jsonl", "text_pair"])
def test_text_labels_per_document_limit(tmp_path, reader):
    p, lp = tmp_path / "t.txt", tmp_path / "l.txt"
    if reader == "fasttext":
        p.write_text("__label__a x\n__label__a __label__b __label__c x\n")
        load = lambda: read_fasttext(p, max_labels_per_doc=2)  # noqa: E731
    elif reader == "jsonl":
        p.write_text('{"text": "x", "labels": ["a"]}\n{"text": "x", "labels": ["a", "b", "c"]}\n')
        load = lambda: read_jsonl(p, max_labels_per_doc=2)  # noqa: E731
    else:
        p.write_text("x\ny\n")
        lp.write_text("a\na b c\n")
        load = lambda: read_text_pair(p, lp, max_labels_per_doc=2)  # noqa: E731
    with pytest.raises(DataFormatError) as err:
        load()
    where = lp if reader == "text_pair" else p
    assert str(err.value).startswith(f"{where}:2: more than 2 labels on this line (max_labels_per_doc)")


def test_cli_limit_options_name_the_option(tmp_path):
    train = tmp_path / "train.txt"
    X, Y = small_xc()
    write_xc(train, X, Y)
    runner = CliRunner()
    r = runner.invoke(cli, ["--max-line-bytes", "8", "train", "--train", str(train), "--model-dir",
                            str(tmp_path / "m"), "--threads", "1"])
    assert r.exit_code == 2
    assert f"{train}:2: the line is longer than 8 bytes" in r.output and "--max-line-bytes" in r.output
    r = runner.invoke(cli, ["--max-labels-per-doc", "1", "--max-line-bytes", "1000", "build-tree", "--train",
                            str(train), "--out", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output  # one label per document: within both limits
    # Options of the group, before the command: every command's readers take them.
    help_text = runner.invoke(cli, ["--help"]).output
    assert "--max-line-bytes" in help_text and "--max-labels-per-doc" in help_text


# ---- accepted quirks -------------------------------------------------------------
def test_xc_bom_crlf_and_blank_lines():
    plain = b"3 4 2\n0 1:1\n\n1 3:2\n"
    want = parse_xc_bytes(plain)
    for variant in (b"\xef\xbb\xbf" + plain, plain.replace(b"\n", b"\r\n")):
        got = parse_xc_bytes(variant)
        assert (got.X != want.X).nnz == 0 and (got.Y != want.Y).nnz == 0
        rX, rY, _ = reference_parse_xc(variant)
        assert (rX != want.X).nnz == 0
    # A blank line is a document with neither labels nor features, and the header counts it.
    assert want.n_docs == 3 and want.X[1].nnz == 0 and want.Y[1].nnz == 0
    with pytest.raises(DataFormatError, match="header promises 2 documents, found 3"):
        parse_xc_bytes(b"2 4 2\n0 1:1\n\n1 3:2\n")
    # A truncated last line that still parses is read; one cut inside a token is refused (BAD_CASES).
    assert parse_xc_bytes(b"0 1:1\n1 3:2").n_docs == 2


def test_fasttext_blank_lines_and_repeated_labels_are_counted(tmp_path):
    p = tmp_path / "a.ft"
    p.write_text("\n__label__a x\n\n\n__label__b __label__b __label__c y\nno labels here\n")
    with pytest.warns(DataWarning) as record:
        d = read_fasttext(p)
    assert d.labels == [["a"], ["b", "c"], []] and d.texts == ["x", "y", "no labels here"]
    text = messages(record)
    assert f"{p}: blank lines skipped: 3 (first at line 1)" in text
    assert f"{p}: repeated labels dropped: 1 (first at line 5)" in text


def test_jsonl_and_text_pair_repeated_labels_are_counted(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "x", "labels": ["a", "a", 1, "1"]}\n\n{"text": "", "labels": []}\n')
    with pytest.warns(DataWarning) as record:
        d = read_jsonl(p)
    assert d.labels == [["a", "1"], []] and d.texts == ["x", ""]
    assert f"{p}: repeated labels dropped: 2 (first at line 1)" in messages(record)
    assert f"{p}: blank lines skipped: 1 (first at line 2)" in messages(record)
    t, lab = tmp_path / "t.txt", tmp_path / "l.txt"
    t.write_text("x\n\ny\n")
    lab.write_text("a\nb b\n\n")
    with pytest.warns(DataWarning, match=r"l.txt: repeated labels dropped: 1 \(first at line 2\)"):
        d = read_text_pair(t, lab)
    assert d.texts == ["x", "", "y"] and d.labels == [["a"], ["b"], []]  # the empty text stays in place
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"text": "x", "labels": ["a"]}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file warns about nothing
        assert read_jsonl(clean).labels == [["a"]]


# ---- training: empty documents, no labels ---------------------------------------
def test_empty_xc_documents_are_left_out_of_training():
    X, Y = small_xc(empty_rows=(3, 10, 11))
    corpus = XCData(X, Y, X.shape[1], Y.shape[1])
    with pytest.warns(DataWarning, match=r"documents without features left out of training: 3 "
                                         r"\(first document 3 \(0-based\)\)"):
        Xt, Yt = Pipeline().prepare(corpus)
    assert Xt.shape[0] == 57 and Yt.shape[0] == 57 and np.diff(Xt.indptr).min() > 0
    empty = XCData(sp.csr_matrix((2, 5), dtype=np.float32), Y[:2], 5, Y.shape[1])
    with pytest.raises(DataFormatError, match="all 2 training documents are empty"):
        Pipeline().prepare(empty)


def test_empty_texts_and_unlabelled_documents_at_training(tmp_path):
    corpus = TextData(["alpha beta", "  ", "gamma delta", "beta gamma"], [["a"], ["b"], ["b"], []])
    with pytest.warns(DataWarning) as record:
        X, Y = Pipeline().prepare(corpus)
    text = messages(record)
    assert "empty texts left out of training: 1 (first document 1 (0-based))" in text
    assert "documents without labels: 1 (first document 2 (0-based)); they are kept as negatives" in text
    assert X.shape[0] == 3 and Y.shape == (3, 2)
    p = tmp_path / "nolabels.ft"
    p.write_text("__lable__a some text\nmore text\n")  # a typo in the prefix: no document has a label
    with pytest.raises(DataFormatError, match="none of the 2 documents has a label; fastText labels need"):
        Pipeline().prepare(read_fasttext(p))


# ---- prediction and evaluation ----------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    X, Y = small_xc(seed=1)
    pipe = Pipeline(PLTParams(threads=1)).fit(XCData(X, Y, X.shape[1], Y.shape[1]))
    return pipe, X, Y


def test_feature_dimension_differs_at_prediction(trained, tmp_path):
    pipe, X, Y = trained
    with pytest.raises(ValueError, match="X has 25 features but the model was trained on 20"):
        pipe.predict_topk(sp.csr_matrix((2, 25), dtype=np.float32))
    other = tmp_path / "other_d.txt"
    write_xc(other, sp.csr_matrix((2, 25), dtype=np.float32), Y[:2])
    with pytest.raises(DataFormatError) as err:
        load_corpus(other, **pipe.reader_kwargs())
    assert str(err.value).startswith(f"{other}:1: the header says D=25 features but n_features=20 was expected")
    headerless = tmp_path / "no_header.txt"
    headerless.write_text("0 3:1 21:1\n")
    with pytest.raises(DataFormatError, match=r"no_header.txt:1: feature id 21 is outside the range \[0, 20\)"):
        load_corpus(headerless, **pipe.reader_kwargs())


def test_unknown_labels_at_prediction_and_evaluation(trained, tmp_path):
    pipe, X, Y = trained
    test = tmp_path / "test.txt"
    Yt = sp.hstack([Y[:8], sp.csr_matrix(np.eye(8, 2, dtype=np.float32))]).tocsr()  # labels 4 and 5 unseen
    write_xc(test, X[:8], Yt)
    corpus = load_corpus(test, **pipe.reader_kwargs())  # read, not refused
    with pytest.warns(DataWarning, match=r"labels never seen in training \(in 2 documents\): 2 \(first document 0"):
        truth = pipe.labels(corpus)
    assert truth.shape == (8, 4) and truth.nnz == 8
    ids, scores = pipe.predict_topk(corpus.X, k=2, beam=4)
    pred = tmp_path / "pred.txt"
    write_predictions(pred, ids, scores, pipe.vocab)
    train = XCData(X, Y, X.shape[1], Y.shape[1])
    for path, train_corpus in ((pred, train), (pred.with_suffix(".npz"), None)):
        with pytest.warns(DataWarning, match="they stay in the truth and count as misses"):
            metrics = evaluate_prediction_file(path, corpus, ks=(2,), train=train_corpus)
        # Documents 0 and 1 hold an unseen label besides their own: recall@2 is at most 1/2 on them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            seen_only = evaluate_prediction_file(path, XCData(X[:8], Y[:8], 20, 4), ks=(2,), train=train_corpus)
        assert metrics["R@2"] == pytest.approx(seen_only["R@2"] - 1.0 / 8)


def test_cli_shows_counted_skips_as_warning_lines(tmp_path):
    p = tmp_path / "train.jsonl"
    rows = [{"text": f"word{i % 5} common text", "labels": [f"l{i % 5}", f"l{i % 5}"]} for i in range(40)]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    r = CliRunner().invoke(cli, ["train", "--train", str(p), "--model-dir", str(tmp_path / "m"), "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert f"warning: {p}: repeated labels dropped: 40 (first at line 1)" in r.output
    assert f"warning: {p}: blank lines skipped: 1 (first at line 41)" in r.output
    assert "Traceback" not in r.output
