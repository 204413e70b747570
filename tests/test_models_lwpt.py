"""LW-PT (xmc.models.lwpt): the pre-training sampler, sentence splitting, both encoders against a per-label
loop, pre-training that learns its task, fine-tuning that learns, save/load."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.metrics import f1_scores  # noqa: E402
from xmc.models.lwpt import LWPT, LWPTParams  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.models.lwpt import (HLWLSTM, LWLSTM, PretrainingSampler, sentence_batch,  # noqa: E402
                             sentence_token_pattern, split_sentences)
from xmc.text.tokens import DEFAULT_TOKEN_PATTERN, Tokenizer, TextParams  # noqa: E402
from model_checks import assert_same_after_loading, head_baseline_p1, p_at  # noqa: E402


def params(encoder: str = "lw", **extra) -> LWPTParams:
    return LWPTParams.from_flat({"epochs": 6, "hidden": 32, "batch_size": 32, "lr": 0.003, "dropout": 0.2,
                                 "device": "cpu", "threads": 1, "swa_start": 0, "patience": 6, "encoder": encoder,
                                 "pretrain_steps": 150, "sentence_len": 10,
                                 "embedding": {"source": "random", "dim": 32}, "text": {"max_len": 64}, **extra})


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=16, n_train=700, n_test=200, n_features=300,
                                         avg_features_per_doc=20.0, noise=0.2, seed=4))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def test_the_sampler_draws_one_positive_sharing_the_label_and_negatives_without_it():
    rng = np.random.default_rng(0)
    dense = rng.random((60, 8)) < 0.25
    dense[:, 7] = False  # a label no document has
    dense[:, 6] = False
    dense[5, 6] = True  # a label of one document: no positive exists for it
    sampler = PretrainingSampler(sp.csr_matrix(dense.astype(np.float32)), n_candidates=4)
    targets, labels, candidates = sampler.sample(2000, rng)
    assert candidates.shape == (2000, 4)
    assert np.all(dense[targets, labels])  # k is a label of the target
    assert not np.any(np.isin(labels, [6, 7]))
    assert np.all(candidates[:, 0] != targets) and np.all(dense[candidates[:, 0], labels])
    assert not np.any(dense[candidates[:, 1:], labels[:, None]])  # no positive among the negatives
    assert all(len(set(row[1:])) == 3 for row in candidates)
    # Pairs are uniform over the positive entries: a label's share follows its frequency.
    frequency = dense[:, :6].sum(axis=0)
    share = np.bincount(labels, minlength=8)[:6] / 2000
    np.testing.assert_allclose(share, frequency / frequency.sum(), atol=0.04)


def test_the_sampler_says_when_no_label_can_make_an_example():
    Y = sp.csr_matrix(np.eye(5, dtype=np.float32))
    with pytest.raises(ValueError, match="at least 2 documents"):
        PretrainingSampler(Y, 3)


def test_sentences_end_at_punctuation_and_are_cut_at_the_length():
    tokenizer = Tokenizer(TextParams(token_pattern=sentence_token_pattern(DEFAULT_TOKEN_PATTERN)))
    assert tokenizer.tokenize("Rates rose. Markets fell!! Why?") == ["rates", "rose", ".", "markets", "fell",
                                                                      "!!", "why", "?"]
    is_end = np.zeros(20, dtype=bool)
    is_end[[3, 4]] = True
    doc = np.array([5, 6, 3, 7, 8, 9, 10, 11, 12, 4, 13])
    got = [s.tolist() for s in split_sentences(doc, is_end, max_words=4, max_sentences=10)]
    assert got == [[5, 6, 3], [7, 8, 9, 10], [11, 12, 4], [13]]
    assert len(split_sentences(doc, is_end, 4, 2)) == 2
    assert [s.tolist() for s in split_sentences(np.array([], dtype=np.int64), is_end, 4, 2)] == [[]]
    ids, word_mask, sentence_mask = sentence_batch([doc, doc[:2]], is_end, 4, 10, torch.device("cpu"))
    assert ids.shape == (2, 4, 4) and sentence_mask.tolist() == [[True] * 4, [True, False, False, False]]
    assert word_mask.sum().item() == doc.size + 2


def _label_loop_reference(encoder: LWLSTM, ids, mask):
    """Q_k = softmax(H U_k)^T H, label by label, then the layer norm."""
    H = encoder.words(ids, mask)
    out = []
    for k in range(encoder.queries.shape[0]):
        scores = (H @ encoder.queries[k]).masked_fill(~mask, float("-inf"))
        out.append(torch.einsum("bt,btd->bd", torch.softmax(scores, dim=1), H))
    return encoder.norm(torch.stack(out, dim=1))


def test_lw_lstm_is_the_per_label_attention_of_the_paper():
    torch.manual_seed(0)
    encoder = LWLSTM(np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32), 5, params(hidden=6)).eval()
    ids = torch.randint(1, 30, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False
    torch.testing.assert_close(encoder((ids, mask)), _label_loop_reference(encoder, ids, mask), rtol=1e-4, atol=1e-5)
    some = torch.tensor([[4], [0], [2]])
    torch.testing.assert_close(encoder((ids, mask), some)[:, 0], encoder((ids, mask))[torch.arange(3), some[:, 0]],
                               rtol=1e-4, atol=1e-5)


def test_hlw_lstm_scores_candidates_as_it_scores_all_labels():
    torch.manual_seed(0)
    encoder = HLWLSTM(np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32), 5, params(hidden=6)).eval()
    is_end = np.zeros(30, dtype=bool)
    is_end[3] = True
    docs = [np.array([5, 6, 3, 7, 8, 3, 9]), np.array([10, 11, 12])]
    batch = sentence_batch(docs, is_end, 4, 5, torch.device("cpu"))
    everything = encoder(batch)
    assert everything.shape == (2, 5, 12)
    some = torch.tensor([[1, 4], [3, 3]])
    torch.testing.assert_close(encoder(batch, some), everything[torch.arange(2)[:, None], some], rtol=1e-4,
                               atol=1e-5)
    # A document's padding sentences change nothing: alone it encodes the same.
    alone = encoder(sentence_batch(docs[1:], is_end, 4, 5, torch.device("cpu")))
    torch.testing.assert_close(alone[0], everything[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("encoder", ["lw", "hlw"])
def test_pretraining_learns_its_task_and_fine_tuning_learns_and_round_trips(encoder, corpus, tmp_path):
    torch.set_num_threads(1)
    steps = 300 if encoder == "lw" else 150
    model = LWPT(params(encoder, pretrain_steps=steps)).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    done = model.pretraining
    assert done["steps"] == steps and done["loss"] < done["first_loss"] - 0.03, done
    if encoder == "lw":  # the positive among 3 candidates: chance is 1/3
        assert done["accuracy"] > 0.4, done
    truth = model.labels(corpus[1])
    p1, head = p_at(model, corpus[1], 1), head_baseline_p1(model, *corpus)
    assert p1 > head + 0.05, (p1, head)
    assert f1_scores(truth, model.predict_sets(corpus[1]))[0] > 0.3
    _, empty_scores = model.predict_topk(["", "... !!"], k=3)  # documents without words
    assert np.all(np.isfinite(empty_scores))
    model.save(tmp_path)
    assert_same_after_loading(model, tmp_path, corpus[1])
    reuse_pretrained_encoders(model, tmp_path, corpus)
    saved = json.loads((tmp_path / "params.json").read_text())
    assert saved["encoder"] == encoder and saved["pretrain_steps"] == steps
    if encoder == "hlw":  # the sentence punctuation is part of the saved tokenizer
        assert saved["text"]["token_pattern"] == sentence_token_pattern(DEFAULT_TOKEN_PATTERN)


def reuse_pretrained_encoders(model, directory, corpus):
    """The model directory holds the pre-trained encoders; fine-tuning from them starts where pre-training
    ended and pre-trains nothing."""
    pretrained = load_model(directory / "pretrained")
    for name in ("target", "context"):
        assert not all(torch.equal(a, b) for a, b in zip(getattr(pretrained.network, name).state_dict().values(),
                                                         getattr(model.network, name).state_dict().values()))
    again = LWPT(model.params.with_values({"training.epochs": 1}), pretrained=directory / "pretrained")
    again.fit(corpus[0], valid=corpus[1], progress=False, log=None)
    assert again.pretraining == {} and again.vocab.labels == pretrained.vocab.labels
    assert again.text.vocab == pretrained.text.vocab
    assert p_at(again, corpus[1], 1) > 0.5
    with pytest.raises(ValueError, match="not in the pre-trained model's label set"):
        LWPT(model.params, pretrained=pretrained).fit(TextData(["new words"] * 3, [["unseen-label"]] * 3),
                                                      progress=False, log=None)


@pytest.mark.parametrize("field, value, pattern", [("encoder", "han", "encoder: expected one of"),
                                                   ("pretrain_candidates", 1, "pretrain_candidates"),
                                                   ("pretrain_steps", -1, "pretrain_steps")])
def test_bad_options_are_refused(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        params(**{field: value})
