"""Raw-text corpus readers, format detection and load_corpus."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data import (DataFormatError, DataWarning, TextData, XCData, detect_format, load_corpus, read_fasttext,
                      read_jsonl, read_text_pair, write_xc)


def test_fasttext_labels_anywhere_and_blank_lines(tmp_path):
    p = tmp_path / "train.ft"
    p.write_text("__label__a __label__b  Hello   world\n\n"
                 "some text __label__c\r\n"
                 "no labels at all\n"
                 "__label__a __label__a repeated\n", encoding="utf-8")
    with pytest.warns(DataWarning) as record:  # the blank line and the repeated label, counted
        d = read_fasttext(p)
    assert sorted(str(w.message).split(": ")[1] for w in record) == ["blank lines skipped",
                                                                     "repeated labels dropped"]
    assert d.texts == ["Hello world", "some text", "no labels at all", "repeated"]
    assert d.labels == [["a", "b"], ["c"], [], ["a"]]
    assert len(d) == 4


def test_fasttext_empty_label_name(tmp_path):
    p = tmp_path / "bad.ft"
    p.write_text("__label__a ok\n__label__ broken\n")
    with pytest.raises(DataFormatError, match=r"bad.ft:2: expected a label name after '__label__'"):
        read_fasttext(p)


def test_text_pair_reads_attentionxml_layout(tmp_path):
    t, l = tmp_path / "train_texts.txt", tmp_path / "train_labels.txt"
    t.write_text("first doc\nsecond doc\n\n", encoding="utf-8")
    l.write_text("A B\n\nC\n", encoding="utf-8")
    d = read_text_pair(t, l)
    assert d.texts == ["first doc", "second doc", ""]
    assert d.labels == [["A", "B"], [], ["C"]]


def test_text_pair_count_mismatch_names_both_files(tmp_path):
    t, l = tmp_path / "texts.txt", tmp_path / "labels.txt"
    t.write_text("a\nb\nc\n")
    l.write_text("x\ny\n")
    with pytest.raises(DataFormatError) as err:
        read_text_pair(t, l)
    msg = str(err.value)
    assert str(t) in msg and str(l) in msg and "3 lines" in msg and "has 2" in msg


def test_jsonl_reads_and_reports_bad_lines(tmp_path):
    p = tmp_path / "c.jsonl"
    rows = [{"text": "alpha beta", "labels": ["x", "y"]}, {"text": "gamma", "labels": [3, "3", "z"]}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    with pytest.warns(DataWarning) as record:
        d = read_jsonl(p)
    assert sorted(str(w.message).split(";")[0].split(": ")[1:3] for w in record) == [
        ["blank lines skipped", "1 (first at line 3)"], ["repeated labels dropped", "1 (first at line 2)"]]
    assert d.texts == ["alpha beta", "gamma"]
    assert d.labels == [["x", "y"], ["3", "z"]]

    cases = [
        ('{"text": "a", "labels": []}\n{"text": "b", "labels": [}\n', 2, "expected a JSON object, found invalid JSON"),
        ('{"text": "a"}\n', 1, "expected key 'labels'"),
        ('{"labels": []}\n', 1, "expected key 'text'"),
        ('[1, 2]\n', 1, "expected a JSON object, found list"),
        ('{"text": 5, "labels": []}\n', 1, "expected 'text' to be a string, found int"),
        ('{"text": "a", "labels": "x"}\n', 1, "expected 'labels' to be a list of strings"),
        ('{"text": "a", "labels": [[1]]}\n', 1, "expected 'labels' to be a list of strings"),
    ]
    for body, line, words in cases:
        p.write_text(body, encoding="utf-8")
        with pytest.raises(DataFormatError) as err:
            read_jsonl(p)
        assert str(err.value).startswith(f"{p}:{line}: "), str(err.value)
        assert words in str(err.value)
        assert err.value.line == line


@pytest.mark.parametrize("reader", ["fasttext", "jsonl", "text_pair", "detect"])
def test_non_utf8_input_names_file_and_line(tmp_path, reader):
    p = tmp_path / "latin1.txt"
    ok = tmp_path / "ok.txt"
    ok.write_text("a\nb\n")
    if reader == "jsonl":
        p.write_bytes('{"text": "ok", "labels": []}\n{"text": "caf\xe9", "labels": []}\n'.encode("latin-1"))
    else:
        p.write_bytes("__label__a fine\n__label__b caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataFormatError) as err:
        if reader == "fasttext":
            read_fasttext(p)
        elif reader == "jsonl":
            read_jsonl(p)
        elif reader == "text_pair":
            read_text_pair(ok, p)
        else:
            detect_format(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:2: expected UTF-8 text, found byte 0xe9"), msg


def test_utf8_bom_and_non_ascii_text(tmp_path):
    p = tmp_path / "bom.ft"
    p.write_bytes("\ufeff__label__é naïve café\n".encode("utf-8"))
    d = read_fasttext(p)
    assert d.labels == [["é"]] and d.texts == ["naïve café"]


def test_detect_format_and_load_corpus(tmp_path):
    X = sp.csr_matrix(np.array([[0, 1.5, 0], [2, 0, 0]], dtype=np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [0, 0]], dtype=np.float32))
    xc_h, xc_nh = tmp_path / "a_xc.txt", tmp_path / "b_xc.txt"
    write_xc(xc_h, X, Y)
    write_xc(xc_nh, X, Y, header=False)
    ft = tmp_path / "c.ft"
    ft.write_text("some words __label__x\n")
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"text": "w", "labels": ["x"]}\n')
    tx, lb = tmp_path / "texts.txt", tmp_path / "labels.txt"
    tx.write_text("plain words here\nmore words\n")
    lb.write_text("x y\nz\n")

    assert detect_format(xc_h) == "xc"
    assert detect_format(xc_nh) == "xc"
    assert detect_format(ft) == "fasttext"
    assert detect_format(jl) == "jsonl"
    assert detect_format(tx) == "text"

    d = load_corpus(xc_h)
    assert isinstance(d, XCData) and d.X.shape == (2, 3) and d.Y.shape == (2, 2)
    np.testing.assert_array_equal(d.X.toarray(), X.toarray())
    d = load_corpus(xc_nh, n_features=3, n_labels=2)
    assert d.X.shape == (2, 3) and d.Y.shape == (2, 2)
    assert load_corpus(ft) == TextData(["some words"], [["x"]])
    assert load_corpus(jl) == TextData(["w"], [["x"]])
    assert load_corpus(tx, labels_path=lb) == TextData(["plain words here", "more words"], [["x", "y"], ["z"]])
    with pytest.raises(ValueError, match="looks like plain text.*pass labels_path"):
        load_corpus(tx)
    with pytest.raises(ValueError, match="unknown corpus format 'csv'"):
        load_corpus(tx, format="csv")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match="empty"):
        detect_format(empty)
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "missing.txt")
