"""LACO (xmc.models.laco): the PLCP and CLCP samplers, the cross attention against a loop over windows,
learning with both auxiliary tasks, save/load."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.metrics import f1_scores  # noqa: E402
from xmc.models.laco import LACO, LACOParams  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.models.laco import LACONetwork, sample_clcp, sample_plcp  # noqa: E402
from model_checks import assert_same_after_loading, head_baseline_p1, p_at  # noqa: E402


def params(**extra) -> LACOParams:
    return LACOParams.from_flat({"epochs": 5, "transformer_dim": 64, "batch_size": 32, "lr": 0.003, "dropout": 0.1,
                                 "device": "cpu", "threads": 1, "swa_start": 0, "patience": 5,
                                 "embedding": {"source": "random", "dim": 32}, "text": {"max_len": 64}, **extra})


def _labels(rng, n_docs=80, n_labels=10):
    dense = rng.random((n_docs, n_labels)) < 0.3
    dense[0] = False
    dense[0, 3] = True  # one label only: no IsCo-occur pair, no CLCP part
    dense[1] = True  # every label: no NotCo-occur pair
    return sp.csr_matrix(dense.astype(np.float32)), dense


def test_plcp_pairs_keep_the_ratio_and_never_mislabel_a_pair():
    rng = np.random.default_rng(0)
    Y, dense = _labels(rng)
    rows = np.arange(Y.shape[0])
    b, i, j, q = sample_plcp(Y, rows, pairs=6, ratio=0.5, rng=rng)
    doc = rows[b]
    is_co, not_co = q == 1, q == 0
    assert np.all(dense[doc[is_co], i[is_co]]) and np.all(dense[doc[is_co], j[is_co]]) and np.all(i[is_co] != j[is_co])
    assert np.all(dense[doc[not_co], i[not_co]]) and not np.any(dense[doc[not_co], j[not_co]])
    counts = dense.sum(axis=1)
    regular = (counts >= 2) & (counts < Y.shape[1])
    # gamma = 0.5: 2 IsCo-occur and 4 NotCo-occur pairs per document that can have both.
    per_doc_is = np.bincount(doc[is_co], minlength=Y.shape[0])
    per_doc_not = np.bincount(doc[not_co], minlength=Y.shape[0])
    assert np.all(per_doc_is[regular] == 2) and np.all(per_doc_not[regular] == 4)
    assert per_doc_is[0] == 0 and per_doc_not[1] == 0 and per_doc_not[0] == 4 and per_doc_is[1] == 2


def test_clcp_gives_part_of_the_labels_and_leaves_at_least_one_to_find():
    rng = np.random.default_rng(1)
    Y, dense = _labels(rng)
    rows = np.arange(Y.shape[0])
    sizes = []
    for _ in range(20):
        given, part = sample_clcp(Y, rows, rng)
        assert np.array_equal(part, dense.sum(axis=1) >= 2)
        assert not np.any(given & ~dense)  # Y^G is a subset of the positives
        assert np.all((dense & ~given)[part].sum(axis=1) >= 1)  # something remains to predict
        assert not given[~part].any()
        sizes += given[part].sum(axis=1).tolist()
    assert min(sizes) == 1 and max(sizes) > 2


def test_the_cross_attention_is_a_window_convolution_max_pool_tanh_softmax():
    torch.manual_seed(0)
    net = LACONetwork(np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32), 5,
                      params(transformer_dim=16, window=4)).eval()
    H_D, H_Y = torch.randn(2, 9, 16), torch.randn(2, 5, 16)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 7:] = False
    got = net.classify(H_D, H_Y, mask)
    kernel, bias = net.window.weight.reshape(-1), net.window.bias
    r = kernel.numel() // 2
    expected = []
    for b in range(2):
        M = H_D[b] @ H_Y[b].T  # T, L
        padded = torch.cat([torch.zeros(r, 5), M, torch.zeros(r, 5)])
        local = torch.stack([torch.relu((padded[t:t + 2 * r + 1] * kernel[:, None]).sum(0) + bias)
                             for t in range(9)])  # T, L: each label's window of 2r+1 words
        weight = torch.tanh(local.max(dim=1).values).masked_fill(~mask[b], float("-inf"))
        expected.append(net.classifier(torch.softmax(weight, dim=0) @ H_D[b]))
    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=16, n_train=700, n_test=200, n_features=300,
                                         avg_features_per_doc=20.0, noise=0.2, seed=4))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


def test_learns_with_both_auxiliary_tasks_and_round_trips(corpus, tmp_path):
    torch.set_num_threads(1)
    model = LACO(params(aux_tasks="both")).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    truth = model.labels(corpus[1])
    assert p_at(model, corpus[1], 3) > 0.7
    assert p_at(model, corpus[1], 1) > head_baseline_p1(model, *corpus)
    assert f1_scores(truth, model.predict_sets(corpus[1]))[0] > 0.6
    # Found by the loader fuzzer: cross attention over no word at all gave NaN scores.
    _, empty_scores = model.predict_topk(["", "... !!"], k=3)
    assert np.all(np.isfinite(empty_scores))
    model.save(tmp_path)
    assert_same_after_loading(model, tmp_path, corpus[1], rtol=1e-5)
    assert json.loads((tmp_path / "params.json").read_text())["aux_tasks"] == "both"


def test_a_forged_huge_weight_is_refused(corpus, tmp_path):
    # Found by the loader fuzzer (input 5,269): -1e30 is finite, passed the checks, and gave NaN scores.
    from xmc.utils.modeldir import ModelFormatError, load_arrays, load_json, save_arrays, write_manifest

    model = LACO(params(epochs=1)).fit(corpus[0], progress=False, log=None)
    model.save(tmp_path)
    arrays = load_arrays(tmp_path / "weights.npz")
    name = "network.encoder.layers.0.self_attn.in_proj_weight"
    arrays[name] = arrays[name].copy()
    arrays[name][0, 0] = -1e30
    save_arrays(tmp_path / "weights.npz", arrays)
    info = load_json(tmp_path / "xmc.json")
    write_manifest(tmp_path, "laco", {k: v for k, v in info.items()
                                      if k not in ("format_version", "kind", "xmc_version", "files")})
    with pytest.raises(ModelFormatError, match="magnitude 1e\\+30"):
        load_model(tmp_path)


@pytest.mark.parametrize("field, value, pattern", [("aux_tasks", "mlm", "aux_tasks: expected one of"),
                                                   ("aux_weight", 1.0, "aux_weight"),
                                                   ("transformer_dim", 30, "multiple of attention_heads")])
def test_bad_options_are_refused(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        params(**{field: value})


def test_auxiliary_losses_keep_the_papers_weight_against_the_label_loss():
    # Eq. 4-7: per document L_mlc sums over the n labels, L_plcp is one pair's loss, L_clcp sums over the labels
    # not given. The model divides all by n; the paper's total over n must equal mean-BCE + the auxiliary term.
    torch.manual_seed(0)
    n_labels, alpha = 6, 0.3
    dense = np.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [1, 0, 0, 0, 1, 1]], dtype=bool)
    Y = sp.csr_matrix(dense.astype(np.float32))
    model = LACO(params(aux_tasks="both", aux_weight=alpha, transformer_dim=16, plcp_pairs=3))
    model.network = LACONetwork(np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32), n_labels,
                                model.params).eval()
    ids = torch.randint(2, 20, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    rows = np.arange(3)
    with torch.no_grad():
        H_D, H_Y = model.network.encode(ids, mask)
        logits = model.network.classify(H_D, H_Y, mask)
        target = torch.from_numpy(dense.astype(np.float32))
        mean_bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        got = mean_bce + model._auxiliary_losses(H_Y, ids, mask, Y, rows, np.random.default_rng(5))

        rng = np.random.default_rng(5)  # the same draws, in the same order
        b, i, j, q = sample_plcp(Y, rows, 3, model.params.plcp_ratio, rng)
        given, _ = sample_clcp(Y, rows, rng)
        _, H_G = model.network.encode(ids, mask, torch.from_numpy(given))
        paper = []
        for d in range(3):
            mlc = torch.nn.functional.binary_cross_entropy_with_logits(logits[d], target[d], reduction="sum")
            pairs = b == d
            pair_logits = model.network.plcp(torch.cat([H_Y[d, i[pairs]], H_Y[d, j[pairs]]], dim=1)).squeeze(1)
            plcp = torch.nn.functional.binary_cross_entropy_with_logits(pair_logits, torch.from_numpy(q[pairs]))
            h_given = H_G[d, torch.from_numpy(given[d])].mean(dim=0, keepdim=True)
            rest = torch.from_numpy(~given[d])
            clcp_logits = model.network.clcp(torch.cat([H_G[d, rest], h_given.expand(int(rest.sum()), -1)], dim=1))
            clcp = torch.nn.functional.binary_cross_entropy_with_logits(clcp_logits.squeeze(1), target[d, rest],
                                                                        reduction="sum")
            paper.append(mlc + alpha * plcp + (1 - alpha) * clcp)
    torch.testing.assert_close(got, torch.stack(paper).mean() / n_labels, rtol=1e-5, atol=1e-6)
