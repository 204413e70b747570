"""Model directories written before the packages were reorganised (format version 1, commit 0442351) still
load and predict what they predicted then; a deep model trained again with the same settings is as good."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmc.data import read_jsonl
from xmc.registry import load_model

FIXTURES = Path(__file__).parent / "fixtures" / "models_0442351"


@pytest.mark.parametrize("kind", ["linear", "attentionxml", "ldgn"])
def test_format_1_model_directories_load_and_predict_the_same(kind):
    if kind != "linear":
        pytest.importorskip("torch")
    expected = np.load(FIXTURES / "expected_predictions.npz")
    model = load_model(FIXTURES / kind)
    ids, scores = model.predict_topk(read_jsonl(FIXTURES / "test.jsonl"), k=5)
    np.testing.assert_array_equal(ids, expected[f"{kind}_ids"])
    np.testing.assert_allclose(scores, expected[f"{kind}_scores"], rtol=1e-5, atol=1e-6)


def test_format_1_params_become_the_model_s_own_params():
    pytest.importorskip("torch")
    model = load_model(FIXTURES / "ldgn")
    assert type(model.params).__name__ == "LDGNParams"
    assert model.params.gcn_dim == 8 and model.params.training.epochs == 1 and model.params.output == "per_label"
    assert not hasattr(model.params, "tree") and not hasattr(model.params, "transformer_dim")


def test_attentionxml_trained_again_with_the_fixture_s_settings_is_as_good_and_reproducible(tmp_path):
    """Training has changed since 0442351 (Adam is lazy on the embedding's sparse gradient since the
    EURLEX57K work), so the scores are not the fixture's; two runs from the same seed still agree, and they
    rank the test labels as well as the fixture's model (P@1 and P@5 within 5 points)."""
    torch = pytest.importorskip("torch")
    from xmc.metrics import evaluate
    from xmc.models.attentionxml import AttentionXML, AttentionXMLParams
    from xmc.text.embeddings import EmbeddingParams

    # The settings the fixture was trained with at 0442351 (tests/fixtures/models_0442351/README.md).
    params = AttentionXMLParams.from_flat(dict(embedding=EmbeddingParams(source="random", dim=8), hidden=8,
                                               epochs=3, threads=1, batch_size=32, fc_sizes=[8], lr=1e-2,
                                               swa_start=0))
    test = read_jsonl(FIXTURES / "test.jsonl")
    before = torch.get_num_threads()
    try:
        runs = [AttentionXML(params).fit(read_jsonl(FIXTURES / "train.jsonl"), log=None, progress=False)
                .predict_topk(test, k=5) for _ in range(2)]
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    fixture = load_model(FIXTURES / "attentionxml")
    truth = fixture.labels(test)
    expected = np.load(FIXTURES / "expected_predictions.npz")
    now, then = evaluate(truth, runs[0][0], ks=(1, 5)), evaluate(truth, expected["attentionxml_ids"], ks=(1, 5))
    for k in ("P@1", "P@5"):
        assert now[k] >= then[k] - 0.05, (k, now[k], then[k])
