"""Deep models over another model's candidates (xmc.models.candidates): AttentionXML and LightAttention score a
linear PLT's proposals, blended or stacked, and round-trip; "auto" trains the PLT itself above a label count;
null epochs follow the corpus's size."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.datasets.synthetic import SyntheticParams, make_text_corpus  # noqa: E402
from xmc.metrics import evaluate  # noqa: E402
from xmc.models.attentionxml import AttentionXML  # noqa: E402
from xmc.models.ldgn import LDGN  # noqa: E402
from xmc.models.light_attention import LightAttention  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.training.params import TrainingParams  # noqa: E402

MODELS = {"attentionxml": AttentionXML, "lightattention": LightAttention, "ldgn": LDGN}


@pytest.fixture(scope="module")
def corpus():
    t = make_text_corpus(SyntheticParams(n_labels=30, n_train=1200, n_test=200, n_features=300,
                                         avg_features_per_doc=20.0))
    return TextData(t.train_texts, t.train_labels), TextData(t.test_texts, t.test_labels)


@pytest.fixture(scope="module")
def linear(corpus):
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline
    return Pipeline(PLTParams(threads=1)).fit(corpus[0])


def settings(kind: str, **extra):
    flat = {"epochs": 8, "hidden": 32, "batch_size": 32, "lr": 0.005, "dropout": 0.2, "device": "cpu",
            "threads": 1, "swa_start": 0, "patience": 8, "embedding": {"source": "random", "dim": 32},
            "text": {"max_len": 64}, "n_candidates": 8, "candidate_weight": 0.0, **extra}
    if kind == "ldgn":
        flat.update(gcn_dim=16, graph_width=8, graph="none")
    else:
        flat.update(fc_sizes=[32])
    return MODELS[kind].PARAMS.from_flat(flat)


def p1_and_head(model, corpus, ids):
    p1 = evaluate(model.labels(corpus[1]), ids, ks=(1,))["P@1"]
    counts = np.bincount(model.labels(corpus[0]).indices, minlength=len(model.vocab))
    return p1, model.labels(corpus[1])[:, int(counts.argmax())].toarray().mean()


@pytest.mark.parametrize("kind", ["attentionxml", "lightattention"])
def test_scores_only_the_proposals_learns_and_round_trips(kind, corpus, linear, tmp_path):
    torch.set_num_threads(1)
    model = MODELS[kind](settings(kind), candidates=linear).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    assert model.over_candidates and not model.stacked and model.tree.depth == 1
    ids, scores = model.predict_topk(corpus[1], k=5)
    proposed, _ = linear.predict_topk(corpus[1], k=8)
    names, theirs = np.array(model.vocab.labels), np.array(linear.vocab.labels)
    for row_ids, row_proposed in zip(ids, proposed):  # every label comes from the candidate model
        assert set(names[row_ids[row_ids >= 0]]) <= set(theirs[row_proposed[row_proposed >= 0]])
    p1, head = p1_and_head(model, corpus, ids)
    assert p1 > head + 0.02, (p1, head)  # it learned to rank the proposals
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "candidates" / "xmc.json").is_file()
    again = load_model(tmp_path / "m")
    assert type(again) is type(model) and again.over_candidates
    ids2, scores2 = again.predict_topk(corpus[1], k=5)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2, rtol=1e-6)
    with pytest.raises(ValueError, match="predicts from raw text"):
        again.predict_topk(again.text.encode(corpus[1].texts), k=5)


@pytest.mark.parametrize("kind", ["attentionxml", "lightattention", "ldgn"])
def test_auto_trains_a_linear_plt_above_the_label_count_and_stacks_on_it(kind, corpus, tmp_path):
    torch.set_num_threads(1)
    lines = []
    p = settings(kind, epochs=2, auto_candidates_above=10, candidate_weight=None)
    model = MODELS[kind](p).fit(corpus[0], valid=corpus[1], progress=False, log=lines.append)
    assert model.over_candidates and model.stacked and model._candidate_network().candidate_scale is not None
    assert any(line.startswith("candidates: 30 labels, more than auto_candidates_above 10") for line in lines)
    assert "candidates: the 8 labels per document the candidate model proposes, stacked on its scores" in lines
    assert any(line.startswith("out-of-fold candidates: 3 refits") for line in lines)
    assert any(line.startswith("candidate_weight ") for line in lines)  # null: chosen on validation
    ids, scores = model.predict_topk(corpus[1], k=5)
    ours = evaluate(model.labels(corpus[1]), ids, ks=(1,))["P@1"]
    plt_ids, _ = model.candidate_model.predict_topk(corpus[1], k=5)
    plt_p1 = evaluate(model.candidate_model.labels(corpus[1]), plt_ids, ks=(1,))["P@1"]
    assert ours > plt_p1 - 0.05, (ours, plt_p1)  # it starts from the PLT's ranking and stays near it
    model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "xmc.json").read_text())
    assert manifest["candidates"] is True and manifest["candidate_input"] is True
    again = load_model(tmp_path / "m")
    assert again.stacked
    np.testing.assert_allclose(again.predict_topk(corpus[1], k=5)[1], scores, rtol=1e-5)
    # A refit chooses again: at this label count, with the threshold above it, every label is scored.
    plain = MODELS[kind](settings(kind, epochs=1)).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    assert not plain.over_candidates and not plain.stacked


def test_stacked_with_its_own_part_zeroed_ranks_as_the_candidate_model(corpus, linear):
    torch.set_num_threads(1)
    p = settings("attentionxml", epochs=1, candidate_input=True)
    model = AttentionXML(p, candidates=linear).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    net = model.levels[0]
    with torch.no_grad():
        last = net.scorer.fc[-1]
        last.weight.zero_(), last.bias.zero_(), net.candidate_scale.fill_(1.0)
    _, scores = model.predict_topk(corpus[1], k=5)
    _, their_scores = linear.predict_topk(corpus[1], k=5)
    np.testing.assert_allclose(scores, their_scores, rtol=1e-4)


def test_null_epochs_follow_the_corpus_size():
    p = TrainingParams()
    assert p.epochs is None
    assert p.max_epochs(500_000) == 20  # a small corpus: the most
    assert p.max_epochs(16_000_000) == 3  # EURLEX57K's 45,000 documents cut at 500 tokens
    assert p.max_epochs(10**10) == 2  # never under 2
    assert TrainingParams(epochs=7).max_epochs(10**10) == 7
    with pytest.raises(ValueError, match="epochs"):
        TrainingParams(epochs=0)


def test_candidate_settings_are_checked():
    from xmc.models.attentionxml import AttentionXMLParams
    for bad in ({"candidate_weight": 1.5}, {"candidates": ""}, {"candidate_folds": 1},
                {"candidates": None, "candidate_input": True}, {"auto_candidates_above": -1}):
        with pytest.raises(ValueError, match=next(iter(bad)) if "candidate_input" not in bad else "candidate_input"):
            AttentionXMLParams(**bad)


def test_the_loop_stops_at_the_epochs_the_corpus_size_gives(corpus, monkeypatch):
    import xmc.training.params as training_params
    monkeypatch.setattr(training_params, "TOKEN_BUDGET", 1)  # any corpus is "large": the fewest epochs
    torch.set_num_threads(1)
    lines = []
    p = settings("ldgn", epochs=None, candidates=None, patience=10)
    LDGN(p).fit(corpus[0], valid=corpus[1], progress=False, log=lines.append)
    assert any("at most 2 epochs for" in line and "(training.epochs null)" in line for line in lines)
    assert sum(" epoch " in line and "valid P@1" in line for line in lines) == 2
