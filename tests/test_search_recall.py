"""Per-level beam recall: the numpy replay of the PLT's beam search ends where the native search ends, and
the shares of positives kept behave as a beam must (all of them with an unbounded beam, fewer with a narrow
one, never more at a deeper level)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from test_search import CONFIGS, random_docs, random_tree, random_weights
from xmc.search import BeamSearcher
from xmc.search.recall import beam_recall, plt_level_beams
from xmc.tree.label_tree import LabelTree


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c[0]) for c in CONFIGS])
@pytest.mark.parametrize("beam", [1, 3])
def test_the_replay_ends_with_the_native_search_s_top_labels(config, beam):
    sizes, n_features, w_density, doc_density = config
    rng = np.random.default_rng(11)
    tree = random_tree(rng, sizes)
    weights = random_weights(rng, tree, n_features, w_density)
    X = random_docs(rng, 40, n_features, doc_density)
    levels = plt_level_beams(tree, weights, X, beam=beam)
    assert [lv.shape[1] <= (beam if t < tree.depth - 1 else sizes[-1]) for t, lv in enumerate(levels)]
    ids, _ = BeamSearcher(tree, weights).search(X, k=3, beam=beam)
    replay = np.where(levels[-1][:, :3] >= 0, tree.label_order[np.maximum(levels[-1][:, :3], 0)], -1)
    # float64 here, float32 natively: a near-tie may swap two labels in a handful of rows
    assert np.mean(np.all(replay == ids, axis=1)) >= 0.9


def test_recall_by_level_hand_case():
    # root -> 2 nodes -> 4 labels: node 0 holds positions 0, 1; node 1 positions 2, 3; label i at position i
    tree = LabelTree([np.array([0, 2]), np.array([0, 2, 4])], np.arange(4))
    Y = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32))
    level1 = np.array([[0, -1], [0, -1]])  # doc 0 keeps node 0 (label 0's, not label 2's); doc 1 loses label 3
    level2 = np.array([[0, 1], [0, 1]])
    assert beam_recall(tree, Y, [level1, level2]) == pytest.approx([1 / 3, 1 / 3])


def test_an_unbounded_beam_keeps_every_positive_and_a_narrow_one_loses_some_level_by_level():
    rng = np.random.default_rng(5)
    tree = random_tree(rng, [1, 4, 16, 120])
    weights = random_weights(rng, tree, 60, [0.9, 0.3, 0.05])
    X = random_docs(rng, 80, 60, 0.1)
    Y = sp.random(80, 120, density=0.04, format="csr", random_state=rng)
    Y.data[:] = 1
    assert beam_recall(tree, Y, plt_level_beams(tree, weights, X, beam=16)) == pytest.approx([1.0, 1.0, 1.0])
    narrow = beam_recall(tree, Y, plt_level_beams(tree, weights, X, beam=1))
    assert narrow[0] < 1.0 and all(a >= b for a, b in zip(narrow, narrow[1:]))
