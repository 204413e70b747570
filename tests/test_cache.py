"""The binary cache of parsed XC files (xmc.data.cache)."""
from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from xmc.data import load_corpus, read_xc, write_xc
from xmc.data import cache as xc_cache
from xmc.datasets.synthetic import SyntheticParams, make_corpus


@pytest.fixture
def corpus_file(tmp_path, monkeypatch):
    monkeypatch.setenv(xc_cache.CACHE_ENV, str(tmp_path / "cache"))
    c = make_corpus(SyntheticParams(n_labels=40, n_train=300, n_test=50, n_features=200))
    path = tmp_path / "train.txt"
    write_xc(path, c.X_train, c.Y_train)
    return path


def _equal(a, b) -> None:
    for m, n in ((a.X, b.X), (a.Y, b.Y)):
        assert m.shape == n.shape
        np.testing.assert_array_equal(m.indptr, n.indptr)
        np.testing.assert_array_equal(m.indices, n.indices)
        np.testing.assert_array_equal(m.data, n.data)


def _maps_a_file(array) -> bool:
    base = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


def test_second_read_maps_the_cache_without_parsing(corpus_file, monkeypatch):
    parsed = read_xc(corpus_file)
    first = xc_cache.read_xc_cached(corpus_file, cache=True)
    _equal(first, parsed)
    assert len(list((corpus_file.parent / "cache").iterdir())) == 1

    def no_parse(*args, **kwargs):
        raise AssertionError("the text file was parsed again")

    monkeypatch.setattr(xc_cache, "read_xc", no_parse)
    second = xc_cache.read_xc_cached(corpus_file, cache=True)
    _equal(second, parsed)
    # Read-only maps of the cache files: processes share these pages instead of each holding a copy.
    for array in (second.X.data, second.X.indices, second.X.indptr, second.Y.indices):
        assert not array.flags.writeable
        assert _maps_a_file(array)


def test_a_changed_file_or_other_options_are_parsed_again(corpus_file):
    xc_cache.read_xc_cached(corpus_file, cache=True)
    xc_cache.read_xc_cached(corpus_file, cache=True, max_labels_per_doc=500)
    assert len(list((corpus_file.parent / "cache").iterdir())) == 2  # one per option set
    c = make_corpus(SyntheticParams(n_labels=40, n_train=120, n_test=10, n_features=200, seed=5))
    write_xc(corpus_file, c.X_train, c.Y_train)
    os.utime(corpus_file, ns=(1, 1))  # even with an old time stamp: the size differs
    _equal(xc_cache.read_xc_cached(corpus_file, cache=True), read_xc(corpus_file))


@pytest.mark.parametrize("damage", ["truncate", "bad index", "meta"])
def test_a_damaged_cache_is_not_used(corpus_file, damage):
    xc_cache.read_xc_cached(corpus_file, cache=True)
    folder = next((corpus_file.parent / "cache").iterdir())
    if damage == "truncate":
        path = folder / "X_indices.npy"
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "bad index":
        indices = np.load(folder / "X_indices.npy")
        indices[3] = 10**6
        np.save(folder / "X_indices.npy", indices)
    else:
        (folder / "meta.json").write_text("[]")
    with pytest.warns(xc_cache.CacheWarning, match="not used"):
        data = xc_cache.read_xc_cached(corpus_file, cache=True)
    _equal(data, read_xc(corpus_file))
    _equal(xc_cache.read_xc_cached(corpus_file, cache=True), data)  # rewritten: the next read is clean


def test_automatic_mode_caches_large_files_only(corpus_file, monkeypatch):
    load_corpus(corpus_file)
    assert not (corpus_file.parent / "cache").exists()  # far below 64 MiB
    monkeypatch.setenv(xc_cache.MIN_BYTES_ENV, "0")
    load_corpus(corpus_file)
    assert len(list((corpus_file.parent / "cache").iterdir())) == 1


def test_a_model_trains_on_the_mapped_arrays(corpus_file):
    from xmc.data import XCData
    from xmc.linear import PLTParams
    from xmc.linear.pipeline import Pipeline

    xc_cache.read_xc_cached(corpus_file, cache=True)
    mapped = xc_cache.read_xc_cached(corpus_file, cache=True)  # read-only maps: training must not write into them
    parsed = read_xc(corpus_file)
    fit = lambda d: Pipeline(PLTParams(threads=1)).fit(XCData(d.X, d.Y, d.n_features, d.n_labels))  # noqa: E731
    ids_mapped, _ = fit(mapped).predict_topk(parsed.X, k=3)
    ids_parsed, _ = fit(parsed).predict_topk(parsed.X, k=3)
    np.testing.assert_array_equal(ids_mapped, ids_parsed)
