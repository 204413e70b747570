"""LabelVocab and TfidfFeaturizer: encoding, persistence without pickle,
agreement with scikit-learn."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data import LabelVocab, TfidfFeaturizer, TfidfParams, UnknownLabelError
from xmc.utils.modeldir import ModelFormatError

DOCS = [
    "The quick brown fox jumps over the lazy dog",
    "Never jump over the lazy dog quickly",
    "A quick brown dog outpaces a quick fox",
    "Lazy afternoons are for dogs and foxes",
    "",
    "Brown brown brown fox fox",
]


def test_vocab_fit_encode_decode():
    v = LabelVocab().fit([["b", "a"], ["c"], [], ["a", "d"]])
    assert v.labels == ["a", "b", "c", "d"] and len(v) == 4
    Y = v.encode([["d", "a", "a"], [], ["c"]])
    assert Y.dtype == np.float32 and Y.shape == (3, 4) and Y.has_sorted_indices
    np.testing.assert_array_equal(Y.toarray(), [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])
    assert v.decode(Y) == [["a", "d"], [], ["c"]]
    assert v.decode(np.array([[3, 0], [1, 2]])) == [["d", "a"], ["b", "c"]]
    assert v.decode([2, 1]) == ["c", "b"] and v.decode(np.int64(0)) == "a"
    with pytest.raises(IndexError, match="label id 4 is outside"):
        v.decode([4])


def test_vocab_unknown_labels():
    v = LabelVocab(["x", "y"])
    with pytest.raises(UnknownLabelError, match=r"document 1: label 'zz' is not in the vocabulary"):
        v.encode([["x"], ["y", "zz"]])
    Y = v.encode([["x"], ["y", "zz"]], unknown="skip")
    np.testing.assert_array_equal(Y.toarray(), [[1, 0], [0, 1]])
    with pytest.raises(TypeError, match="document 0: expected a list of labels, found the string 'xy'"):
        v.encode(["xy"])
    with pytest.raises(ValueError, match="unknown must be"):
        v.encode([["x"]], unknown="ignore")


def test_vocab_identity_and_save_load(tmp_path):
    v = LabelVocab.identity(5)
    assert v.labels == ["0", "1", "2", "3", "4"]
    np.testing.assert_array_equal(v.encode([["4", "0"]]).indices, [0, 4])
    w = LabelVocab().fit([["é", "b"], ["a b"]])
    w.save(tmp_path)
    assert json.loads((tmp_path / "labels.json").read_text())["labels"] == ["a b", "b", "é"]
    assert LabelVocab.load(tmp_path) == w
    (tmp_path / "labels.json").write_text('{"format_version": 1, "labels": ["a", "a"]}')
    with pytest.raises(ModelFormatError, match="appears twice"):
        LabelVocab.load(tmp_path)
    (tmp_path / "labels.json").write_text('{"format_version": 1, "labels": [1]}')
    with pytest.raises(ModelFormatError, match="must be a string"):
        LabelVocab.load(tmp_path)
    with pytest.raises(ModelFormatError, match="missing"):
        LabelVocab.load(tmp_path / "nowhere")


@pytest.mark.parametrize("params", [TfidfParams(), TfidfParams(ngram_range=(1, 2), sublinear_tf=False, min_df=2),
                                    TfidfParams(max_features=5, lowercase=False)])
def test_tfidf_matches_sklearn_and_is_l2_normalised(params):
    from sklearn.feature_extraction.text import TfidfVectorizer

    f = TfidfFeaturizer(params)
    X = f.fit_transform(DOCS)
    ref = TfidfVectorizer(max_features=params.max_features, min_df=params.min_df, ngram_range=params.ngram_range,
                          sublinear_tf=params.sublinear_tf, lowercase=params.lowercase,
                          token_pattern=params.token_pattern).fit(DOCS)
    R = ref.transform(DOCS)
    assert X.dtype == np.float32 and sp.isspmatrix_csr(X) and X.shape == R.shape
    assert f.vocabulary == sorted(ref.vocabulary_, key=ref.vocabulary_.get)
    np.testing.assert_allclose(X.toarray(), R.toarray(), rtol=1e-5, atol=1e-7)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    nonempty = np.diff(X.indptr) > 0
    np.testing.assert_allclose(norms[nonempty], 1.0, rtol=1e-5)
    assert not nonempty[4]  # the empty document stays an empty row


def test_tfidf_save_load_gives_identical_output(tmp_path):
    f = TfidfFeaturizer(TfidfParams(ngram_range=(1, 2), min_df=1))
    f.fit(DOCS[:4])
    new_docs = ["a quick lazy fox", "unseen words only", DOCS[5]]
    before = f.transform(new_docs)
    f.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfidf.json", "tfidf_idf.npz", "tfidf_vocab.json"]
    g = TfidfFeaturizer.load(tmp_path)
    assert g.params == f.params and g.params.ngram_range == (1, 2)
    after = g.transform(new_docs)
    assert (before != after).nnz == 0
    np.testing.assert_array_equal(before.indices, after.indices)
    np.testing.assert_array_equal(before.data, after.data)
    assert after.getrow(1).nnz == 0


def test_tfidf_errors(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfFeaturizer().transform(["x"])
    with pytest.raises(ValueError, match="ngram_range"):
        TfidfParams(ngram_range=(2, 1))
    f = TfidfFeaturizer().fit(DOCS)
    f.save(tmp_path)
    (tmp_path / "tfidf_vocab.json").write_text('["only", "two"]')
    with pytest.raises(ModelFormatError, match="expected 2 finite idf values"):
        TfidfFeaturizer.load(tmp_path)


def test_tfidf_lead_block_is_the_first_tokens_weighted_beside_the_whole_text():
    """lead_tokens 3: the columns past the whole text's hold lead_weight x the TF-IDF of the first 3 tokens
    (fitted on those alone), and each row is scaled to unit norm again."""
    params = TfidfParams(ngram_range=(1, 2), lead_tokens=3, lead_weight=0.5)
    f = TfidfFeaturizer(params).fit(DOCS)
    whole = TfidfFeaturizer(TfidfParams(ngram_range=(1, 2))).fit(DOCS)
    firsts = [" ".join(re.findall(r"\w\w+", d)[:3]) for d in DOCS]  # "A" is no token: 2 letters at least
    lead = TfidfFeaturizer(TfidfParams(ngram_range=(1, 2))).fit(firsts)
    assert f.lead.vocabulary == lead.vocabulary and "quick brown" in lead.vocabulary
    assert firsts[2] == "quick brown dog"
    assert "lazy dog" not in lead.vocabulary and f.n_features == whole.n_features + lead.n_features
    expected = sp.hstack([whole.transform(DOCS), 0.5 * lead.transform(firsts)]).toarray()
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    expected = np.divide(expected, norms, out=np.zeros_like(expected), where=norms > 0)
    X = f.transform(DOCS)
    assert X.dtype == np.float32 and sp.isspmatrix_csr(X)
    np.testing.assert_allclose(X.toarray(), expected, rtol=1e-5, atol=1e-7)
    assert X.getrow(4).nnz == 0


def test_tfidf_lead_block_saves_loads_and_reports_a_missing_folder(tmp_path):
    f = TfidfFeaturizer(TfidfParams(lead_tokens=2, lead_weight=2.0)).fit(DOCS)
    f.save(tmp_path)
    assert sorted(p.name for p in (tmp_path / "lead").iterdir()) == ["tfidf.json", "tfidf_idf.npz",
                                                                     "tfidf_vocab.json"]
    g = TfidfFeaturizer.load(tmp_path)
    assert g.params.lead_tokens == 2 and (f.transform(DOCS) != g.transform(DOCS)).nnz == 0
    (tmp_path / "lead" / "tfidf_vocab.json").unlink()
    with pytest.raises(ModelFormatError, match=r"lead/tfidf_vocab.json: file is missing"):
        TfidfFeaturizer.load(tmp_path)
    for bad in ({"lead_tokens": -1}, {"lead_tokens": 1.5}, {"lead_weight": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TfidfParams(**bad)
