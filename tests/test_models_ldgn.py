"""LDGN (xmc.models.ldgn): every graph variant trains, predicts and round-trips; a forged graph is refused."""
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.metrics import evaluate  # noqa: E402
from xmc.models.ldgn import LDGN, LDGNParams  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.utils.modeldir import ModelFormatError, load_arrays, save_arrays  # noqa: E402


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=30, n_train=1200, n_test=200, n_features=300,
                                         avg_features_per_doc=20.0))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def params(graph: str) -> LDGNParams:
    return LDGNParams.from_flat({"epochs": 10, "hidden": 32, "gcn_dim": 32, "graph_width": 8, "batch_size": 32,
                                 "lr": 0.005, "dropout": 0.2, "device": "cpu", "threads": 1, "graph": graph,
                                 "swa_start": 0, "patience": 10,
                                 "embedding": {"source": "random", "dim": 32}, "text": {"max_len": 64}})


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    torch.set_num_threads(1)
    models = {}
    for graph in ("none", "static", "dynamic", "both"):
        model = LDGN(params(graph)).fit(corpus[0], valid=corpus[1], progress=False, log=None)
        directory = tmp_path_factory.mktemp(graph)
        model.save(directory)
        models[graph] = (model, directory)
    return models


def p1_and_head(model: LDGN, corpus, ids: np.ndarray):
    """Test P@1 of ``ids``, and that of always predicting the most frequent training label (what an
    untrained network ends up doing)."""
    p1 = evaluate(model.labels(corpus[1]), ids, ks=(1,))["P@1"]
    counts = np.bincount(model.labels(corpus[0]).indices, minlength=len(model.vocab))
    return p1, model.labels(corpus[1])[:, int(counts.argmax())].toarray().mean()


@pytest.mark.parametrize("graph", ["none", "static", "dynamic", "both"])
def test_each_variant_learns_and_round_trips(graph, trained, corpus):
    model, directory = trained[graph]
    ids, scores = model.predict_topk(corpus[1], k=5)
    p1, head = p1_and_head(model, corpus, ids)
    assert p1 > head + 0.02, (graph, p1, head)
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores, axis=1) <= 0)
    again = load_model(directory)
    ids2, scores2 = again.predict_topk(corpus[1], k=5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2, rtol=1e-6)
    assert json.loads((directory / "params.json").read_text())["graph"] == graph


@pytest.mark.parametrize("graph", ["dynamic", "both"])
def test_training_opens_the_dynamic_branch(graph, trained, corpus):
    """The dynamic branch enters through a gate that starts closed; a gate left at 0 would make the
    variant silently the same model as its static (or no-graph) counterpart."""
    model, _ = trained[graph]
    gate = model.network.dynamic_gate
    assert abs(gate.item()) > 0.01, gate.item()
    _, scores = model.predict_topk(corpus[1], k=5)
    opened = gate.detach().clone()
    with torch.no_grad():
        gate.zero_()
    try:
        _, closed = model.predict_topk(corpus[1], k=5)
    finally:
        with torch.no_grad():
            gate.copy_(opened)
    assert np.abs(scores - closed).max() > 1e-3


def test_the_mixed_output_layer_learns_and_round_trips(corpus, tmp_path):
    torch.set_num_threads(1)
    model = LDGN(params("both").with_values({"output": "mixed"}))
    model.fit(corpus[0], valid=corpus[1], progress=False, log=None)
    model.save(tmp_path)
    ids, scores = model.predict_topk(corpus[1], k=5)
    p1, head = p1_and_head(model, corpus, ids)
    assert p1 > head + 0.02, (p1, head)
    again = load_model(tmp_path)
    np.testing.assert_allclose(scores, again.predict_topk(corpus[1], k=5)[1], rtol=1e-6)
    assert json.loads((tmp_path / "params.json").read_text())["output"] == "mixed"


def test_an_unknown_output_layer_is_refused():
    with pytest.raises(ValueError, match="output: expected one of per_label, mixed, found 'joint'"):
        LDGNParams.from_flat({"ldgn_output": "joint"})


def test_the_static_graph_is_the_normalised_cooccurrence(trained, corpus):
    from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency

    model, _ = trained["static"]
    expected = normalize_adjacency(cooccurrence_graph(model.labels(corpus[0])))
    assert abs(model.graph_matrix - expected).max() < 1e-6


@pytest.mark.parametrize("change,pattern", [
    (lambda a: a.__setitem__("graph.indices", np.full_like(a["graph.indices"], 10**6)), r"expected ids in \[0, 30\)"),
    (lambda a: a.__setitem__("graph.values", np.full_like(a["graph.values"], np.nan)), "non-finite"),
    # finite but far out of range: propagation overflowed into NaN scores (loader fuzz input 601,075)
    (lambda a: a["graph.values"].__setitem__(0, -1e30), r"outside \[0, 1\]"),
    (lambda a: a.pop("graph.indptr"), "missing"),
])
def test_a_forged_graph_is_refused(change, pattern, trained, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fz", Path(__file__).resolve().parents[1] / "fuzz" /
                                                  "model_loader_fuzz.py")
    fz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fz)
    _, directory = trained["both"]
    d = tmp_path / "model"
    shutil.copytree(directory, d)
    arrays = load_arrays(d / "weights.npz")
    change(arrays)
    save_arrays(d / "weights.npz", arrays)
    fz.rewrite_manifests(d, "weights.npz", fz.snapshot(directory))
    with pytest.raises(ModelFormatError, match=pattern):
        load_model(d)


@pytest.mark.parametrize("reweight", [None, 0.2, 0.9])
def test_saved_graphs_pass_the_loaders_range_check(reweight, corpus, tmp_path):
    # The loader refuses weights outside [0, max(1, p / (1 - p))]: no graph LDGN builds may fall outside.
    from xmc.data import LabelVocab
    from xmc.data.label_graph import cooccurrence_graph, normalize_adjacency
    from xmc.models.ldgn import _graph_from_arrays

    Y = LabelVocab().fit(corpus[0].labels).encode(corpus[0].labels)
    A = normalize_adjacency(cooccurrence_graph(Y, reweight=reweight))
    arrays = {"graph.indptr": A.indptr.astype(np.int64), "graph.indices": A.indices.astype(np.int64),
              "graph.values": A.data}
    assert (_graph_from_arrays(arrays, Y.shape[1], reweight, tmp_path) != A).nnz == 0


@pytest.mark.parametrize("graph", ["both", "none"])
def test_over_linear_candidates_learns_and_round_trips(graph, corpus, tmp_path):
    # LDGN scores only the labels a linear PLT proposes; its graph is cut to each document's candidates.
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline

    linear = Pipeline(PLTParams(threads=1)).fit(corpus[0])
    p = params(graph)
    p.n_candidates = 8
    model = LDGN(p, candidates=linear).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    ids, scores = model.predict_topk(corpus[1], k=5)
    proposed, _ = linear.predict_topk(corpus[1], k=8)
    names = np.array(model.vocab.labels)
    for row_ids, row_proposed in zip(ids, proposed):  # every label comes from the candidate model
        assert set(names[row_ids[row_ids >= 0]]) <= set(np.array(linear.vocab.labels)[row_proposed[row_proposed >= 0]])
    truth = model.labels(corpus[1])
    p1 = evaluate(truth, ids, ks=(1,))["P@1"]
    counts = np.bincount(model.labels(corpus[0]).indices, minlength=len(model.vocab))
    head = truth[:, int(counts.argmax())].toarray().mean()
    assert p1 > head + 0.02, (p1, head)  # it learned to rank the proposals, not only the most frequent label
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "candidates" / "xmc.json").is_file()
    again = load_model(tmp_path / "m")
    ids2, scores2 = again.predict_topk(corpus[1], k=5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2, rtol=1e-6)
    with pytest.raises(ValueError, match="predicts from raw text"):
        again.predict_topk(again.text.encode(corpus[1].texts), k=5)


def test_candidate_weight_blends_with_the_candidate_model_and_is_chosen_on_validation(corpus, tmp_path):
    """candidate_weight 1 ranks as the candidate model does; null picks a weight on the validation
    documents, logs it, saves it, and the loaded model predicts with it."""
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline

    linear = Pipeline(PLTParams(threads=1)).fit(corpus[0])
    p = params("none")
    p.n_candidates, p.training.epochs, p.candidate_weight = 8, 2, None
    lines = []
    model = LDGN(p, candidates=linear).fit(corpus[0], valid=corpus[1], progress=False, log=lines.append)
    chosen = [line for line in lines if line.startswith("candidate_weight ")]
    assert len(chosen) == 1 and "LDGN alone" in chosen[0] and "the candidate model alone" in chosen[0]
    assert 0.0 <= model.candidate_weight <= 1.0
    assert chosen[0].startswith(f"candidate_weight {model.candidate_weight:g},")

    blended = model.predict_topk(corpus[1], k=5)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.candidate_weight == model.candidate_weight
    np.testing.assert_array_equal(again.predict_topk(corpus[1], k=5)[0], blended[0])

    again.candidate_weight = 1.0  # the candidate model's scores alone: its own ranking, its own scores
    ids, scores = again.predict_topk(corpus[1], k=5)
    theirs, their_scores = linear.predict_topk(corpus[1], k=5)
    names, their_names = np.array(again.vocab.labels), np.array(linear.vocab.labels)
    np.testing.assert_allclose(scores, their_scores, rtol=1e-6)
    top = their_scores[:, 0] > their_scores[:, 1]  # rows whose best label is not tied
    np.testing.assert_array_equal(names[ids[top, 0]], their_names[theirs[top, 0]])
    again.candidate_weight = 0.0
    alone = again.predict_topk(corpus[1], k=5)
    assert not np.array_equal(alone[1], scores)


def test_candidate_input_stacks_on_out_of_fold_scores(corpus, tmp_path):
    """candidate_input: training reads proposals from refits that never saw the document (less confident on
    its positives than the model trained on everything); with LDGN's own part zeroed the model returns the
    candidate model's scores; the learned scale is saved."""
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline

    linear = Pipeline(PLTParams(threads=1)).fit(corpus[0])
    p = params("static")
    p.n_candidates, p.training.epochs, p.candidate_input = 8, 2, True
    model = LDGN(p, candidates=linear)
    model.vocab = linear.vocab  # _proposals maps by name into the LDGN's label ids
    truth = model.vocab.encode(corpus[0].labels)
    positions, scores = model._out_of_fold_proposals(corpus[0])
    in_sample = model._proposals(corpus[0])

    def positive_score(proposed):
        pos, sc = proposed
        hit = [sc[i][np.isin(pos[i], truth[i].indices)] for i in range(len(pos))]
        return np.concatenate(hit).mean()
    assert positive_score((positions, scores)) < positive_score(in_sample) - 0.01

    model = LDGN(p, candidates=linear).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    assert model.network.candidate_scale.item() != 1.0  # learned
    ids, sc = model.predict_topk(corpus[1], k=5)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.predict_topk(corpus[1], k=5)[1], sc, rtol=1e-5)

    net = again.network
    with torch.no_grad():
        net.out_weight.zero_(), net.out_bias.zero_(), net.candidate_scale.fill_(1.0)
    ids, sc = again.predict_topk(corpus[1], k=5)
    theirs, their_scores = linear.predict_topk(corpus[1], k=5)
    np.testing.assert_allclose(sc, their_scores, rtol=1e-4)
    with pytest.raises(ValueError, match="candidate_input"):  # stacked on nothing
        LDGNParams(candidate_input=True, candidates=None)


def test_candidate_weight_is_checked():
    with pytest.raises(ValueError, match="candidate_weight"):
        LDGNParams(candidate_weight=1.5)


def test_feedforward_encoder_reads_a_bag_of_words_in_any_order(corpus, tmp_path):
    # Delicious-like documents (no word order): the feed-forward encoder learns, and shuffling a document's
    # words changes no score, where the BiLSTM's would.
    torch.set_num_threads(1)
    p = params("both")
    p.token_encoder = "feedforward"
    model = LDGN(p).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    ids, scores = model.predict_topk(corpus[1], k=5)
    truth = model.labels(corpus[1])
    counts = np.bincount(model.labels(corpus[0]).indices, minlength=len(model.vocab))
    assert evaluate(truth, ids, ks=(1,))["P@1"] > truth[:, int(counts.argmax())].toarray().mean() + 0.02
    rng = np.random.default_rng(0)
    shuffled = TextData([" ".join(rng.permutation(t.split())) for t in corpus[1].texts], corpus[1].labels)
    ids2, scores2 = model.predict_topk(shuffled, k=5)
    np.testing.assert_allclose(scores2, scores, rtol=1e-5, atol=1e-6)
    model.save(tmp_path)
    assert json.loads((tmp_path / "params.json").read_text())["token_encoder"] == "feedforward"
    np.testing.assert_allclose(load_model(tmp_path).predict_topk(corpus[1], k=5)[1], scores, rtol=1e-6)
