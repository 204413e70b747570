"""Synthetic corpora for tests, examples and benchmarks; readers for real
raw-text datasets in their original layout (``REAL_DATASETS``)."""
from xmc.datasets.real import (REAL_DATASETS, RealDataset, load_goemotions, load_goemotions_splits, load_reuters21578,
                               load_reuters21578_splits)
from xmc.datasets.synthetic import (SyntheticCorpus, SyntheticParams, SyntheticTextCorpus, label_names, make_corpus,
                                    make_label_embeddings, make_text_corpus, pseudo_words)

__all__ = [
    "REAL_DATASETS",
    "RealDataset",
    "load_goemotions",
    "load_goemotions_splits",
    "load_reuters21578",
    "load_reuters21578_splits",
    "SyntheticCorpus",
    "SyntheticParams",
    "SyntheticTextCorpus",
    "label_names",
    "make_corpus",
    "make_label_embeddings",
    "make_text_corpus",
    "pseudo_words",
]
