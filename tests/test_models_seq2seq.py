"""Seq2Seq-MDC (xmc.models.seq2seq_mdc): the dilated convolution's receptive field, the beam search against
an exhaustive reference, the frequency-ordered targets, learning on generated data, save/load."""
import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.metrics import f1_scores  # noqa: E402
from xmc.models.seq2seq_mdc import Seq2SeqMDC, Seq2SeqMDCParams  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.models.seq2seq_mdc import DilatedConvolutions, Seq2SeqNetwork  # noqa: E402
from xmc.utils.modeldir import ModelFormatError, load_json, write_manifest  # noqa: E402
from model_checks import assert_same_after_loading, head_baseline_p1, p_at  # noqa: E402


def params(attention: str = "hybrid", **extra) -> Seq2SeqMDCParams:
    return Seq2SeqMDCParams.from_flat({"epochs": 8, "hidden": 32, "label_embedding_dim": 32, "batch_size": 32,
                                 "lr": 0.003, "dropout": 0.1, "device": "cpu", "threads": 1, "swa_start": 0,
                                 "patience": 8, "top_k": 4, "decoder_attention": attention,
                                 "embedding": {"source": "random", "dim": 32}, "text": {"max_len": 64}, **extra})


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=16, n_train=800, n_test=200, n_features=300,
                                         avg_features_per_doc=20.0, seed=3))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    torch.set_num_threads(1)
    model = Seq2SeqMDC(params()).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    directory = tmp_path_factory.mktemp("s2s")
    model.save(directory)
    return model, directory


def test_the_dilated_convolutions_see_exactly_thirteen_words_without_holes():
    torch.manual_seed(0)
    mdc = DilatedConvolutions(4)
    assert mdc.receptive_field == 13  # 1 + 2 * (1 + 2 + 3)
    H = torch.randn(1, 30, 4, requires_grad=True)
    units, unit_mask = mdc(H, torch.ones(1, 30, dtype=torch.bool))
    assert units.shape == (1, 30 - 12, 4) and bool(unit_mask.all())
    j = 5
    units[0, j].sum().backward()
    reach = H.grad[0].abs().sum(dim=1) > 0
    # Unit j reads words j .. j + 12 and every one of them: rates 1, 2, 3 leave no gridding gap.
    assert reach.nonzero().ravel().tolist() == list(range(j, j + 13))


def test_short_documents_keep_one_unit_and_padding_is_not_read():
    torch.manual_seed(0)
    mdc = DilatedConvolutions(3)
    H = torch.randn(2, 20, 3)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, :20], mask[1, :5] = True, True
    units, unit_mask = mdc(H, mask)
    assert unit_mask.sum(dim=1).tolist() == [8, 1]
    changed = H.clone()
    changed[1, 5:] = 100.0  # padding
    units2, _ = mdc(changed, mask)
    torch.testing.assert_close(units[1, 0], units2[1, 0])


def _network(n_labels: int, attention: str, seed: int = 0) -> Seq2SeqNetwork:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = Seq2SeqNetwork(rng.normal(size=(30, 8)).astype(np.float32), n_labels,
                         params(attention, hidden=8, label_embedding_dim=8))
    with torch.no_grad():  # large weights: peaked, varied distributions
        for p in net.parameters():
            p.mul_(3.0)
    return net.eval()


@torch.no_grad()
def _exhaustive_best(net: Seq2SeqNetwork, ids, mask, max_steps: int):
    """The highest-scoring sequence of distinct labels + EOS of at most max_steps tokens, by enumeration."""
    L = net.n_labels
    best, best_score = None, -np.inf
    memory = net.encode(ids, mask)
    for length in range(max_steps):
        for labels in itertools.permutations(range(L), length):
            tokens = list(labels) + [L]
            state = net.start(memory)
            previous, score, emitted = torch.tensor([net.bos]), 0.0, set()
            for t, token in enumerate(tokens):
                logits, state = net.step(previous, state, memory)
                logits = logits[0].clone()
                logits[list(emitted)] = -np.inf
                if t == max_steps - 1:
                    logits[:L] = -np.inf
                score += float(torch.log_softmax(logits, dim=0)[token])
                emitted.add(token)
                previous = torch.tensor([token])
            if score > best_score:
                best, best_score = tokens, score
    return best


@pytest.mark.parametrize("attention", ["hybrid", "additive", "words"])
def test_a_wide_beam_finds_the_exhaustive_best_sequence_and_never_repeats(attention):
    net = _network(4, attention)
    rng = np.random.default_rng(1)
    for doc in range(6):
        length = int(rng.integers(3, 20))
        ids = torch.from_numpy(rng.integers(1, 30, size=(1, length)))
        mask = torch.ones(1, length, dtype=torch.bool)
        emitted, probs, tokens = net.beam_search(ids, mask, beam=64, max_steps=4)
        tokens = tokens[0].tolist()
        sequence = tokens[:tokens.index(4) + 1]
        assert sequence == _exhaustive_best(net, ids, mask, 4), (attention, doc)
        labels = sequence[:-1]
        assert len(labels) == len(set(labels))
        assert sorted(np.flatnonzero(emitted[0].numpy()).tolist()) == sorted(labels)
        assert torch.all((probs >= 0) & (probs <= 1))


def test_the_beam_never_emits_a_label_twice_even_when_the_network_wants_to():
    net = _network(5, "hybrid")
    with torch.no_grad():
        net.output.bias.zero_()
        net.output.bias[2] = 50.0  # label 2 dominates every step; EOS is never likely
    ids = torch.randint(1, 30, (3, 15))
    mask = torch.ones(3, 15, dtype=torch.bool)
    for beam in (1, 3, 8):
        emitted, _, tokens = net.beam_search(ids, mask, beam=beam, max_steps=6)
        for row in tokens.tolist():
            labels = row[:row.index(5)]
            assert labels.count(2) == 1 and len(labels) == len(set(labels)), (beam, row)
        assert emitted[:, 2].all()


def test_targets_are_labels_by_descending_training_frequency(corpus):
    from xmc.data import LabelVocab

    model = Seq2SeqMDC(params())
    model.vocab = LabelVocab().fit(corpus[0].labels)
    Y = model.vocab.encode(corpus[0].labels)
    tree = model._build_tree(corpus[0].texts, Y)
    frequency = np.asarray(Y.sum(axis=0)).ravel()
    assert np.all(np.diff(frequency[tree.label_order]) <= 0)
    Y_pos = Y[:, tree.label_order].tocsr()
    Y_pos.sort_indices()
    seq = model._sequences(Y_pos, np.arange(10))
    for b in range(10):
        ranks = sorted(Y_pos[b].indices.tolist())
        assert seq[b, :len(ranks)].tolist() == ranks and seq[b, len(ranks)] == Y.shape[1]
        assert np.all(seq[b, len(ranks) + 1:] == -1)


def test_learns_and_round_trips(trained, corpus):
    model, directory = trained
    truth = model.labels(corpus[1])
    ids, scores = model.predict_topk(corpus[1], k=5)
    p1, head = p_at(model, corpus[1], 1), head_baseline_p1(model, *corpus)
    assert p1 > head + 0.05, (p1, head)
    sets = model.predict_sets(corpus[1])
    micro, _ = f1_scores(truth, sets)
    # Always predicting the most frequent label: the set baseline the decoder must beat.
    counts = np.bincount(model.labels(corpus[0]).indices, minlength=len(model.vocab))
    head_sets = np.zeros(truth.shape, dtype=np.float32)
    head_sets[:, int(counts.argmax())] = 1
    assert micro > f1_scores(truth, head_sets)[0] + 0.1, (micro, f1_scores(truth, head_sets))
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(np.diff(scores, axis=1) <= 0)
    assert_same_after_loading(model, directory, corpus[1])
    assert (load_model(directory).predict_sets(corpus[1]) != sets).nnz == 0
    assert json.loads((directory / "params.json").read_text())["decoder_attention"] == "hybrid"


def test_a_document_without_words_gets_finite_scores(trained):
    # Found by the loader fuzzer: attention over no word at all gave NaN scores.
    model, _ = trained
    ids, scores = model.predict_topk(["", "... !!", "x"], k=3)
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("forged, pattern", [(0, "max_steps"), (10**6, "max_steps"), ("3", "max_steps"),
                                             (True, "max_steps")])
def test_a_forged_step_count_is_refused(forged, pattern, trained, tmp_path):
    import shutil

    _, directory = trained
    copy = tmp_path / "m"
    shutil.copytree(directory, copy)
    info = load_json(copy / "xmc.json")
    extra = {k: v for k, v in info.items() if k not in ("format_version", "kind", "files", "xmc_version")}
    extra["max_steps"] = forged
    write_manifest(copy, "seq2seq-mdc", extra)
    with pytest.raises(ModelFormatError, match=pattern):
        load_model(copy)


def test_a_tree_is_refused(corpus):
    from xmc.tree import LabelTree

    with pytest.raises(ValueError, match="no label tree"):
        Seq2SeqMDC(params()).fit(corpus[0], tree=LabelTree.flat(16), progress=False, log=None)


def test_an_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="decoder_attention: expected one of"):
        params("bilinear")


def test_attention_reads_each_document_once_for_all_beam_hypotheses():
    # The beam search hands the attention W queries per document and the memory once (not W copies of it,
    # which held gigabytes on Reuters-21578): the result must be what the copies give.
    from xmc.models.seq2seq_mdc import BilinearAttention

    torch.manual_seed(0)
    attention = BilinearAttention(8, 6)
    B, W, T = 3, 4, 5
    keys, values = torch.randn(B, T, 8), torch.randn(B, T, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    queries = torch.randn(B * W, 8)
    once = attention(queries, keys, values, mask)
    copies = attention(queries, keys.repeat_interleave(W, 0), values.repeat_interleave(W, 0),
                       mask.repeat_interleave(W, 0))
    torch.testing.assert_close(once, copies)
    assert torch.isfinite(once).all()
