"""Every text reader reads gzip-compressed files in place, with the same results and the same error messages
(file, line) as for plain files; a damaged gzip stream is an error naming the file."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from xmc.cli.main import cli
from xmc.data import DataFormatError, TextData, XCData, load_corpus, write_jsonl, write_xc
from xmc.data.stream import iter_corpus
from xmc.datasets.synthetic import SyntheticParams, make_corpus, make_text_corpus

CORPUS = make_text_corpus(SyntheticParams(n_labels=12, n_train=80, n_test=20, n_features=100, seed=4))
DOCS = TextData(CORPUS.train_texts, CORPUS.train_labels)


def gzip_copy(path, name=None):
    out = path.with_name(name or path.name + ".gz")
    with open(path, "rb") as src, gzip.open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def write_format(tmp_path, fmt):
    """The same documents as a plain file in ``fmt``; returns (path, labels_path or None)."""
    if fmt == "jsonl":
        write_jsonl(tmp_path / "d.jsonl", DOCS)
        return tmp_path / "d.jsonl", None
    if fmt == "fasttext":
        lines = [" ".join(f"__label__{label}" for label in labels) + " " + text
                 for text, labels in zip(DOCS.texts, DOCS.labels)]
        (tmp_path / "d.txt").write_text("\n".join(lines) + "\n")
        return tmp_path / "d.txt", None
    if fmt == "text":
        (tmp_path / "texts.txt").write_text("\n".join(DOCS.texts) + "\n")
        (tmp_path / "labels.txt").write_text("\n".join(" ".join(labels) for labels in DOCS.labels) + "\n")
        return tmp_path / "texts.txt", tmp_path / "labels.txt"
    c = make_corpus(SyntheticParams(n_labels=12, n_train=80, n_test=20, n_features=100, seed=4))
    write_xc(tmp_path / "d.xc", c.X_train, c.Y_train)
    return tmp_path / "d.xc", None


def same(a, b) -> None:
    if isinstance(a, XCData):
        assert (a.X != b.X).nnz == 0 and (a.Y != b.Y).nnz == 0 and a.n_features == b.n_features
    else:
        assert a.texts == b.texts and a.labels == b.labels


@pytest.mark.parametrize("fmt", ["jsonl", "fasttext", "text", "xc"])
def test_gzip_files_read_as_the_plain_ones(tmp_path, fmt):
    path, labels = write_format(tmp_path, fmt)
    plain = load_corpus(path, labels_path=labels)
    gz_labels = gzip_copy(labels) if labels else None
    # detected from the content: with or without a .gz suffix
    for gz in (gzip_copy(path), gzip_copy(path, "compressed.data")):
        same(load_corpus(gz, labels_path=gz_labels), plain)
        chunks = list(iter_corpus(gz, labels_path=gz_labels, chunk_docs=30))
        assert len(chunks) == 3
        if fmt == "xc":
            assert sum(c.X.shape[0] for c in chunks) == plain.X.shape[0]
            assert (chunks[1].X != plain.X[30:60]).nnz == 0
        else:
            assert [t for c in chunks for t in c.texts] == plain.texts


@pytest.mark.parametrize("fmt, bad_line, expected", [
    ("jsonl", '{"text": "a", "labels": "x"}', "expected"),
    ("fasttext", "__label__ a b", "expected a label name"),
    ("xc", "1,2 3:x", "expected"),
])
def test_errors_in_a_gzip_file_name_it_and_the_line_as_for_plain_files(tmp_path, fmt, bad_line, expected):
    path, _ = write_format(tmp_path, fmt)
    lines = path.read_text().splitlines()
    lines[3] = bad_line
    path.write_text("\n".join(lines) + "\n")
    gz = gzip_copy(path)
    with pytest.raises(DataFormatError) as plain:
        load_corpus(path, format=fmt)
    with pytest.raises(DataFormatError) as compressed:
        load_corpus(gz, format=fmt)
    assert expected in str(plain.value)
    assert str(compressed.value) == str(plain.value).replace(str(path), str(gz), 1)
    assert compressed.value.file == str(gz) and compressed.value.line == plain.value.line


@pytest.mark.parametrize("fmt", ["jsonl", "xc"])
@pytest.mark.parametrize("damage", ["truncated", "corrupted", "bad header"])
def test_a_damaged_gzip_stream_is_an_error_naming_the_file(tmp_path, fmt, damage):
    path, _ = write_format(tmp_path, fmt)
    gz = gzip_copy(path)
    data = bytearray(gz.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupted":
        data[len(data) // 2: len(data) // 2 + 16] = bytes(16)
    else:
        data[3] = 0xFF  # reserved flag bits: not a gzip header gzip accepts
    gz.write_bytes(bytes(data))
    with pytest.raises(DataFormatError) as err:
        load_corpus(gz, format=fmt)
    assert str(err.value).startswith(f"{gz}")
    # Bytes zeroed mid-stream may first decode into lines that are no longer JSON; the CRC at the end of the
    # stream would catch them otherwise. Either way the message names the file.
    assert "gzip stream is damaged" in str(err.value) or damage == "corrupted"


def test_cli_trains_and_predicts_on_gzip_files_with_no_conversion(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", DOCS)
    write_jsonl(tmp_path / "test.jsonl", TextData(CORPUS.test_texts, CORPUS.test_labels))
    train, test = gzip_copy(tmp_path / "train.jsonl"), gzip_copy(tmp_path / "test.jsonl")
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "--train", str(train), "--valid", str(test), "--model-dir", str(tmp_path / "m"),
                            "--threads", "1"])
    assert r.exit_code == 0 and "P@1=" in r.output, r.output
    r = runner.invoke(cli, ["predict", "--model-dir", str(tmp_path / "m"), "--input", str(test), "--out",
                            str(tmp_path / "p.txt")])
    assert r.exit_code == 0 and "P@1=" in r.output, r.output
    r = runner.invoke(cli, ["evaluate", "--predictions", str(tmp_path / "p.txt"), "--truth", str(test)])
    assert r.exit_code == 0 and "P@1" in r.output and "RP@5" in r.output, r.output
    assert np.isfinite(float(r.output.split("P@1")[1].split()[0]))
