"""AttentionXML and LightAttention on small generated raw-text corpora."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.metrics import evaluate  # noqa: E402
from xmc.models.attentionxml import AttentionXML, AttentionXMLParams  # noqa: E402
from xmc.models.light_attention import LightAttention, LightAttentionParams  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.training.batching import parents_with_positives, row_targets  # noqa: E402
from xmc.tree.label_tree import expand_children  # noqa: E402
from xmc.models.light_attention import cluster_candidates  # noqa: E402
from xmc.text.embeddings import EmbeddingParams  # noqa: E402
from xmc.tree import TreeParams  # noqa: E402
from xmc.utils.modeldir import ModelFormatError  # noqa: E402


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def small_params(cls=AttentionXMLParams, **overrides):
    base = dict(embedding=EmbeddingParams(source="random", dim=32), hidden=32, fc_sizes=[32], batch_size=32,
                epochs=8, patience=8, lr=1e-2, dropout=0.1, embedding_dropout=0.1, seed=0,
                tree=TreeParams(branching_factor=4, max_leaf_size=4), top_k=4)
    if cls is LightAttentionParams:
        base["generator_top_k"] = 3
    base.update(overrides)
    return cls.from_flat(base)


def corpus(n_labels: int, n_train: int = 800, n_test: int = 150, seed: int = 3):
    # Less background noise than the generator's default, so small networks learn in a few epochs.
    c = make_text_corpus(SyntheticParams(n_labels=n_labels, n_train=n_train, n_test=n_test, n_features=400,
                                         noise=0.3, seed=seed))
    return TextData(c.train_texts, c.train_labels), TextData(c.test_texts, c.test_labels)


def majority_p3(model, train: TextData, test: TextData) -> float:
    """P@3 of always predicting the three most frequent training labels."""
    counts = np.asarray(model.labels(train).sum(axis=0)).ravel()
    ids = np.tile(np.argsort(-counts, kind="stable")[:3], (len(test), 1))
    return evaluate(model.labels(test), ids, ks=(3,))["P@3"]


def p3(model, test: TextData, **kwargs) -> float:
    ids, _ = model.predict_topk(test, k=3, **kwargs)
    return evaluate(model.labels(test), ids, ks=(3,))["P@3"]


@pytest.fixture(scope="module")
def flat_model():
    train, test = corpus(12)
    model = AttentionXML(small_params()).fit(train, progress=False, log=None)
    return model, train, test


@pytest.fixture(scope="module")
def tree_model():
    train, test = corpus(48, n_train=600)
    model = AttentionXML(small_params(flat_max_labels=16, epochs=12)).fit(train, progress=False, log=None)
    return model, train, test


def test_flat_attentionxml_learns(flat_model):
    model, train, test = flat_model
    assert model.tree.depth == 1
    ids, scores = model.predict_topk(test, k=3)
    assert p3(model, test) > majority_p3(model, train, test) + 0.1
    assert np.all(np.diff(scores, axis=1) <= 1e-6) and scores.min() >= 0 and scores.max() <= 1


def test_save_load_gives_identical_predictions(flat_model, tmp_path):
    model, _, test = flat_model
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert isinstance(again, AttentionXML)
    a, sa = model.predict_topk(test, k=5)
    b, sb = again.predict_topk(test, k=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb, rtol=1e-6)


def test_damaged_weights_are_refused(flat_model, tmp_path):
    model, _, _ = flat_model
    model.save(tmp_path / "m")
    with open(tmp_path / "m" / "weights.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(ModelFormatError, match="weights.npz"):
        load_model(tmp_path / "m")


def test_tree_attentionxml_trains_level_by_level(tree_model):
    model, train, test = tree_model
    assert model.tree.depth >= 2 and len(model.levels) == model.tree.depth
    assert p3(model, test) > majority_p3(model, train, test) + 0.1


def test_beam_search_with_a_full_beam_is_exhaustive(tree_model):
    """A beam as wide as every level returns the labels whose path probability product is largest."""
    model, _, test = tree_model
    docs = model.features(TextData(test.texts[:20], test.labels[:20]))
    wide = max(model.tree.level_size(level) for level in range(1, model.tree.depth + 1))
    ids, scores = model.predict_topk(docs, k=5, beam=wide)
    # Exhaustive: every level scores all its nodes; a label's score is the product along its path.
    from xmc.training.batching import tensors

    x, mask = tensors(docs, np.arange(len(docs)), model.params.text.max_len, model.device)
    with torch.no_grad():
        total = None
        for level, net in enumerate(model.levels, start=1):
            probs = torch.sigmoid(net(x, mask)).numpy()
            total = probs if total is None else probs * total[:, model.tree.node_parents(level - 1)]
    by_label = np.empty_like(total)
    by_label[:, model.tree.label_order] = total
    expected = np.sort(by_label, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(by_label, ids.astype(np.int64), axis=1), scores, rtol=1e-5)


def test_level_beams_keep_every_positive_with_a_full_beam_and_end_with_the_top_labels(tree_model):
    from xmc.search.recall import beam_recall

    model, _, test = tree_model
    test = TextData(test.texts[:30], test.labels[:30])
    Y = model.labels(test)
    wide = max(model.tree.level_size(level) for level in range(1, model.tree.depth + 1))
    assert beam_recall(model.tree, Y, model.level_beams(test, beam=wide)) == pytest.approx([1.0] * model.tree.depth)
    levels = model.level_beams(test, beam=2)
    assert all(nodes.shape[1] == 2 for nodes in levels[:-1])
    ids, _ = model.predict_topk(test, k=3, beam=2)
    np.testing.assert_array_equal(model.tree.label_order[levels[-1][:, :3]], ids)
    narrow = beam_recall(model.tree, Y, levels)
    assert all(a >= b for a, b in zip(narrow, narrow[1:])) and narrow[-1] < 1.0


def test_light_attention_learns_and_round_trips(tmp_path):
    train, test = corpus(24, n_train=600)
    model = LightAttention(small_params(LightAttentionParams)).fit(train, progress=False, log=None)
    assert model.tree.n_leaves > 1
    assert p3(model, test) > majority_p3(model, train, test) + 0.1
    ids, _ = model.predict_topk(test, k=5)
    model.save(tmp_path / "la")
    again = load_model(tmp_path / "la")
    assert isinstance(again, LightAttention)
    np.testing.assert_array_equal(again.predict_topk(test, k=5)[0], ids)


def test_cluster_candidates_put_positives_first_and_dynamic_negatives_hold_no_positive():
    positives = sp.csr_matrix(np.array([[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32))
    generated = np.array([[3, 2, 0, 5, 4], [5, 1, 2, 3, 0]])
    clusters, valid, dynamic = cluster_candidates(generated, positives, np.array([0, 1]), top_k=2)
    assert clusters[0, :4].tolist() == [0, 3, 2, 5] and valid[0].all()
    assert clusters[1, :3].tolist() == [5, 1, 2] and valid[1].tolist() == [True, True, True, False]
    for b in range(2):
        chosen = clusters[b][dynamic[b]]
        assert chosen.size == 2 and not positives[b].toarray().ravel()[chosen].any()


def test_parents_with_positives_forces_the_positives_in():
    positives = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=np.float32))
    predicted = np.array([[3, 4, 0, 2], [2, 3, -1, -1]])
    parents, valid = parents_with_positives(predicted, positives, np.array([0, 1]), k=3, rng=None)
    assert parents[0].tolist() == [1, 4, 3] and valid[0].all()
    assert parents[1, :2].tolist() == [2, 3] and valid[1].tolist() == [True, True, False]


def test_expand_children_and_targets_match_a_loop():
    indptr = np.array([0, 2, 5, 6])
    parents = np.array([[2, 0], [1, 1]])
    valid = np.array([[True, True], [True, False]])
    children, cvalid, slot = expand_children(parents, valid, indptr)
    got = [sorted(children[b][cvalid[b]].tolist()) for b in range(2)]
    assert got == [[0, 1, 5], [2, 3, 4]]
    assert all(parents[b, slot[b, j]] <= 2 for b in range(2) for j in range(children.shape[1]))
    Y = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0]], dtype=np.float32))
    t = row_targets(Y, np.array([0, 1]), children)
    for b in range(2):
        for j in range(children.shape[1]):
            assert t[b, j] == Y[b, children[b, j]]


def test_sparse_input_is_refused_with_a_clear_message(flat_model):
    model, _, _ = flat_model
    with pytest.raises(ValueError, match="raw text"):
        model.features(sp.csr_matrix(np.ones((2, 3))))


def test_ensemble_averages_members_and_round_trips(tmp_path):
    from xmc.models.ensemble import Ensemble, EnsembleParams

    train, test = corpus(12, n_train=400, n_test=60)
    params = EnsembleParams(model="attentionxml", n_models=2, member=small_params(epochs=2))
    ens = Ensemble(params).fit(train, progress=False, log=None)
    ids, scores = ens.predict_topk(test, k=3)
    # The top ensemble score is the mean of the members' scores of that label.
    member_scores = []
    for m in ens.members:
        mi, ms = m.predict_topk(test, k=6)
        member_scores.append({(r, int(l)): float(s) for r in range(len(test)) for l, s in zip(mi[r], ms[r])})
    for r in range(len(test)):
        expected = np.mean([d.get((r, int(ids[r, 0])), 0.0) for d in member_scores])
        assert scores[r, 0] == pytest.approx(expected, rel=1e-5)
    ens.save(tmp_path / "e")
    again = load_model(tmp_path / "e")
    np.testing.assert_array_equal(again.predict_topk(test, k=3)[0], ids)


def test_bilstm_encoder_equals_a_packed_bilstm_on_real_tokens():
    """The unpacked two-LSTM encoder must give a packed BiLSTM's states at every real token."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from xmc.layers.encoders import BiLSTMEncoder

    torch.manual_seed(0)
    enc = BiLSTMEncoder(np.random.default_rng(0).random((50, 8), dtype=np.float32), 6,
                        embedding_dropout=0.0, dropout=0.0).double()
    lengths = torch.tensor([7, 3, 1, 5])
    mask = torch.arange(7)[None] < lengths[:, None]
    ids = torch.randint(1, 50, (4, 7)).masked_fill(~mask, 0)
    bi = torch.nn.LSTM(8, 6, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(bi, name).copy_(getattr(enc.forward_lstms[0], name))
            getattr(bi, name + "_reverse").copy_(getattr(enc.backward_lstms[0], name))
    packed = pack_padded_sequence(enc.embedding(ids).double(), lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(bi(packed)[0], batch_first=True, total_length=7)
    np.testing.assert_allclose(enc(ids, mask)[mask].detach().numpy(), expected[mask].detach().numpy(), atol=1e-12)


def test_light_attention_clusters_shrink_on_small_label_sets():
    """Clusters of tree.max_leaf_size labels, fewer where that would leave under min_clusters clusters, never
    under 2: the generator needs clusters to tell apart."""
    p = LightAttentionParams()
    assert [p.cluster_size(n) for n in (5, 28, 90, 200, 256, 4271)] == [2, 2, 2, 6, 8, 8]
    assert LightAttentionParams(min_clusters=4).cluster_size(28) == 7
    train, _ = corpus(12, n_train=200)
    model = LightAttention(small_params(LightAttentionParams, epochs=1)).fit(train, progress=False, log=None)
    assert int(np.diff(model.cluster_indptr).max()) <= 2 and model.tree.n_leaves >= 6
