"""The deep models' text pipeline: tokenizer, word vocabulary, encoder, padding,
batching and the initial word embeddings."""
import json
import random

import numpy as np
import pytest
import torch

from xmc.data.errors import DataFormatError
from xmc.text import (EmbeddingParams, TextEncoder, TextParams, Tokenizer, WordVocab, build_embeddings,
                    iter_padded, iterate_batches, load_word2vec, pad_batch)
from xmc.text.embeddings import detect_word2vec_binary
from xmc.utils.modeldir import ModelFormatError

torch.set_num_threads(1)


# ---------------------------------------------------------------- tokenizer

def test_tokenizer_default_pattern():
    tok = Tokenizer()
    assert tok.tokenize("Don't STOP: it's 3.5% of U.S. sales_tax, rock'n'roll! Café") == [
        "don't", "stop", "it's", "3", "5", "of", "u", "s", "sales", "tax", "rock'n'roll", "café"]
    assert tok.tokenize("'quoted' -- 'tis") == ["quoted", "tis"]
    assert tok.tokenize("") == [] and tok.tokenize("?! ...") == []


def test_tokenizer_keeps_case_when_asked_and_many_equals_one_by_one():
    texts = ["Hello World", "GDP rose 2%", ""]
    cased = Tokenizer(TextParams(lowercase=False))
    assert cased.tokenize_many(texts) == [["Hello", "World"], ["GDP", "rose", "2"], []]
    tok = Tokenizer()
    assert tok.tokenize_many(texts) == [tok.tokenize(t) for t in texts]


def test_text_params_reject_capturing_groups_and_bad_values():
    with pytest.raises(ValueError, match="capturing group"):
        TextParams(token_pattern=r"(\w+)")
    with pytest.raises(ValueError, match="not a valid regex"):
        TextParams(token_pattern="[a-")
    with pytest.raises(ValueError, match="max_vocab"):
        TextParams(max_vocab=1)


# ---------------------------------------------------------------- vocabulary

DOCS = [["b", "a", "c", "a"], ["c", "a", "d"], ["e", "b"]]  # a:3, b:2, c:2, d:1, e:1


def test_vocab_orders_by_count_then_alphabetically_with_reserved_ids():
    v = WordVocab.fit(DOCS)
    assert v.words == ["<pad>", "<unk>", "a", "b", "c", "d", "e"]
    assert len(v) == 7 and v.id_of("a") == 2 and v.id_of("zzz") == 1


def test_vocab_min_count_and_max_size():
    assert WordVocab.fit(DOCS, min_count=2).words == ["<pad>", "<unk>", "a", "b", "c"]
    assert WordVocab.fit(DOCS, max_size=4).words == ["<pad>", "<unk>", "a", "b"]
    assert WordVocab.fit(DOCS, min_count=4).words == ["<pad>", "<unk>"]
    with pytest.raises(ValueError, match="max_size"):
        WordVocab.fit(DOCS, max_size=1)


def test_vocab_does_not_depend_on_document_order():
    rng = random.Random(0)
    docs = [[rng.choice("abcdefghij") for _ in range(rng.randint(0, 12))] for _ in range(200)]
    words = WordVocab.fit(docs).words
    for _ in range(3):
        rng.shuffle(docs)
        assert WordVocab.fit(docs).words == words


def test_vocab_encode_unknown_and_truncation():
    v = WordVocab.fit(DOCS, min_count=2)
    out = v.encode([["a", "zzz", "c", "d", "b"], []], max_len=4)
    assert [x.tolist() for x in out] == [[2, 1, 4, 1], []]
    assert all(x.dtype == np.int32 for x in out)
    with pytest.raises(TypeError, match="tokenize first"):
        WordVocab.fit(["a string, not tokens"])


def test_vocab_save_load_round_trip(tmp_path):
    v = WordVocab.fit([["naïve", "café", "x"], ["x"]])
    v.save(tmp_path)
    assert WordVocab.load(tmp_path) == v


def test_vocab_damaged_file_errors(tmp_path):
    WordVocab.fit(DOCS).save(tmp_path)
    path = tmp_path / "words.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ModelFormatError, match="words.json: not valid JSON"):
        WordVocab.load(tmp_path)
    path.write_text(json.dumps({"format_version": 1, "words": ["a", "<pad>", "<unk>"]}))
    with pytest.raises(ModelFormatError, match=r"first two words to be '<pad>' and '<unk>'"):
        WordVocab.load(tmp_path)
    path.write_text(json.dumps({"format_version": 1, "words": ["<pad>", "<unk>", "a", "a"]}))
    with pytest.raises(ModelFormatError, match="'a' appears twice"):
        WordVocab.load(tmp_path)
    path.write_text(json.dumps({"format_version": 9, "words": ["<pad>", "<unk>"]}))
    with pytest.raises(ModelFormatError, match="newer than this xmc reads"):
        WordVocab.load(tmp_path)
    path.unlink()
    with pytest.raises(ModelFormatError, match="words.json: file is missing"):
        WordVocab.load(tmp_path)


def test_text_encoder_round_trip(tmp_path):
    texts = ["The cat sat on the mat.", "The dog ate the cat's dinner!", ""]
    enc = TextEncoder(TextParams(max_len=4, min_count=1)).fit(texts)
    ids = enc.encode(["the cat ate a fish", ""])
    assert [x.tolist() for x in ids] == [[enc.vocab.id_of("the"), enc.vocab.id_of("cat"), enc.vocab.id_of("ate"), 1],
                                         []]
    enc.save(tmp_path)
    back = TextEncoder.load(tmp_path)
    assert back.params == enc.params and back.vocab == enc.vocab
    assert [x.tolist() for x in back.encode(texts)] == [x.tolist() for x in enc.encode(texts)]
    (tmp_path / "text_params.json").write_text(json.dumps({"format_version": 1, "params": {"max_len": 0}}))
    with pytest.raises(ModelFormatError, match="text_params.json: invalid text parameters: max_len"):
        TextEncoder.load(tmp_path)
    with pytest.raises(RuntimeError, match="not fitted"):
        TextEncoder().encode(["x"])


# ---------------------------------------------------------------- padding and batches

def test_pad_batch_shapes_values_and_mask():
    seqs = [np.array([5, 6, 7], np.int32), np.array([], np.int32), np.array([8], np.int32)]
    ids, mask = pad_batch(seqs)
    assert ids.dtype == torch.int64 and mask.dtype == torch.bool
    assert ids.tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]]
    assert mask.tolist() == [[True] * 3, [False] * 3, [True, False, False]]
    ids, mask = pad_batch(seqs, max_len=2)
    assert ids.tolist() == [[5, 6], [0, 0], [8, 0]] and mask.sum().item() == 3
    ids, mask = pad_batch([np.array([], np.int32)])  # an empty document is one masked <pad>
    assert ids.tolist() == [[0]] and mask.tolist() == [[False]]
    assert pad_batch([])[0].shape == (0, 1)


def test_iterate_batches_cover_each_index_once():
    for kwargs in ({}, {"shuffle": True, "seed": 3}, {"lengths": np.arange(103) % 7, "bucket_batches": 2},
                   {"lengths": np.arange(103) % 7, "shuffle": True}):
        batches = list(iterate_batches(103, 10, **kwargs))
        assert sorted(np.concatenate(batches).tolist()) == list(range(103))
        assert max(len(b) for b in batches) == 10
    a = [b.tolist() for b in iterate_batches(50, 8, shuffle=True, seed=1)]
    assert a == [b.tolist() for b in iterate_batches(50, 8, shuffle=True, seed=1)]
    assert a != [b.tolist() for b in iterate_batches(50, 8, shuffle=True, seed=2)]


def test_sorting_by_length_cuts_padding():
    rng = np.random.default_rng(0)
    seqs = [np.ones(n, np.int32) for n in rng.integers(0, 300, 1000)]

    def padded_cells(sort):
        return sum(ids.numel() for _, ids, _ in iter_padded(seqs, 32, shuffle=True, seed=0, sort_by_length=sort))

    real = sum(len(s) for s in seqs)
    assert padded_cells(True) < 1.1 * real < padded_cells(False)


# ---------------------------------------------------------------- embeddings

def test_random_embeddings_shape_scale_and_zero_pad_row():
    vocab = WordVocab.fit(DOCS)
    e = build_embeddings(vocab, EmbeddingParams(dim=16, seed=1))
    assert e.shape == (7, 16) and e.dtype == np.float32
    assert not e[0].any() and np.abs(e[1:]).max() <= 0.25 and e[1:].std() > 0.1
    assert np.array_equal(e, build_embeddings(vocab, EmbeddingParams(dim=16, seed=1)))


def _topic_corpus(n=1500, seed=0):
    # Two topics that share no words: words of one topic only ever appear near each other.
    rng = random.Random(seed)
    groups = [["cat", "dog", "mouse", "pet", "fur", "tail", "paw"], ["car", "bus", "truck", "wheel", "road", "engine",
                                                                     "fuel"]]
    return [[rng.choice(groups[i % 2]) for _ in range(10)] for i in range(n)]


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_skipgram_puts_words_sharing_contexts_together():
    tokens = _topic_corpus()
    vocab = WordVocab.fit(tokens)
    p = EmbeddingParams(source="skipgram", dim=16, window=3, epochs=5, seed=0, threads=1)
    e = build_embeddings(vocab, p, tokens)
    v = {w: e[vocab.id_of(w)] for w in ("cat", "dog", "mouse", "car", "bus", "truck")}
    within = [_cos(v["cat"], v["dog"]), _cos(v["cat"], v["mouse"]), _cos(v["car"], v["bus"]), _cos(v["bus"], v["truck"])]
    across = [_cos(v["cat"], v["car"]), _cos(v["dog"], v["bus"]), _cos(v["mouse"], v["truck"])]
    assert min(within) > max(across) + 0.2, (within, across)
    assert not e[0].any()
    assert np.array_equal(e, build_embeddings(vocab, p, tokens))  # one thread and a seed: reproducible
    with pytest.raises(ValueError, match="pass token_lists"):
        build_embeddings(vocab, p)


VEC = {"the": [0.5, -1.0, 2.0], "Cat": [1.0, 2.0, 3.0], "cat": [4.0, 5.0, 6.0], "Dog": [7.0, 8.0, 9.5],
       "DOG": [0.0, 0.0, 1.0], "unused": [9.0, 9.0, 9.0]}


def _write_text(path, rows, header=None):
    lines = [header or f"{len(rows)} 3"] + [w + " " + " ".join(repr(x) for x in v) + " " for w, v in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_binary(path, rows):
    parts = [f"{len(rows)} 3\n".encode()]
    parts += [w.encode() + b" " + np.asarray(v, "<f4").tobytes() + b"\n" for w, v in rows.items()]
    path.write_bytes(b"".join(parts))


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_file_rows_and_lowercase_matching(tmp_path, binary):
    path = tmp_path / ("vec.bin" if binary else "vec.txt")
    (_write_binary if binary else _write_text)(path, VEC)
    assert detect_word2vec_binary(str(path)) is binary
    vocab = WordVocab(["the", "cat", "dog", "bird"])
    out, found = load_word2vec(path, vocab)
    assert found.tolist() == [False, False, True, True, True, False]
    assert out[vocab.id_of("the")].tolist() == VEC["the"]
    assert out[vocab.id_of("cat")].tolist() == VEC["cat"]  # the exact match wins over "Cat", seen first
    assert out[vocab.id_of("dog")].tolist() == VEC["Dog"]  # the first cased form wins over "DOG"
    cased, found = load_word2vec(path, WordVocab(["Cat", "dog"]))  # a cased vocabulary: exact matches only
    assert found.tolist() == [False, False, True, False] and cased[2].tolist() == VEC["Cat"]

    e = build_embeddings(vocab, EmbeddingParams(source=str(path), dim=3, seed=0))
    assert e[vocab.id_of("cat")].tolist() == VEC["cat"] and not e[0].any()
    assert e[vocab.id_of("bird")].any() and e[1].any()  # not in the file: random rows
    with pytest.raises(ValueError, match="holds 3-dimensional vectors but dim is 300; set dim=3"):
        build_embeddings(vocab, EmbeddingParams(source=str(path)))


def test_word2vec_binary_written_by_gensim_loads(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(3)
    kv.add_vectors(list(VEC), np.array(list(VEC.values()), np.float32))
    path = tmp_path / "gensim.bin"
    kv.save_word2vec_format(str(path), binary=True)
    out, found = load_word2vec(path, WordVocab(["DOG", "the"]))
    assert found.sum() == 2 and out[2].tolist() == VEC["DOG"] and out[3].tolist() == VEC["the"]


def test_malformed_word2vec_files_name_file_and_line(tmp_path):
    vocab = WordVocab(["the"])
    path = tmp_path / "bad.txt"
    _write_text(path, VEC, header="six three")
    with pytest.raises(DataFormatError, match=r"bad.txt:1: expected a word2vec header of two integers"):
        load_word2vec(path, vocab)
    path.write_text("2 3\nthe 1 2 3\ncat 1 2\n")
    with pytest.raises(DataFormatError, match=r"bad.txt:3: expected a word and 3 values .* found 2 values after 'cat'"):
        load_word2vec(path, vocab)
    path.write_text("2 3\nthe 1 x 3\ncat 1 2 3\n")
    with pytest.raises(DataFormatError, match=r"bad.txt:2: expected 3 numbers after 'the', found 'x'"):
        load_word2vec(path, vocab)
    path.write_text("3 3\nthe 1 2 3\ncat 1 2 3\n")
    with pytest.raises(DataFormatError, match="header says 3 vectors but the file holds 2"):
        load_word2vec(path, vocab)
    binary = tmp_path / "bad.bin"
    _write_binary(binary, VEC)
    binary.write_bytes(binary.read_bytes()[:-7])
    with pytest.raises(DataFormatError, match=r"bad.bin: entry 6 \('unused'\) at byte \d+: expected 12 bytes"):
        load_word2vec(binary, vocab)
