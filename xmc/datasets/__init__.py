"""Synthetic corpora for tests, examples and benchmarks."""
from xmc.datasets.synthetic import (
    SyntheticCorpus,
    SyntheticParams,
    SyntheticTextCorpus,
    label_names,
    make_corpus,
    make_label_embeddings,
    make_text_corpus,
    pseudo_words,
)

__all__ = [
    "SyntheticCorpus",
    "SyntheticParams",
    "SyntheticTextCorpus",
    "label_names",
    "make_corpus",
    "make_label_embeddings",
    "make_text_corpus",
    "pseudo_words",
]
