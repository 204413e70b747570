"""xmc.nn: what the deep models share.

- :mod:`xmc.nn.text`: :class:`TextParams`, :class:`Tokenizer`, :class:`WordVocab`
  and :class:`TextEncoder` (raw text -> word-id arrays, saved as JSON),
  :func:`pad_batch` (-> ``(ids, mask)`` tensors) and :func:`iterate_batches`.
- :mod:`xmc.nn.embeddings`: :class:`EmbeddingParams` and :func:`build_embeddings`
  (random, skip-gram on the training texts, or a word2vec file).

Torch and gensim are imported only by the functions that use them.
"""
from xmc.nn.embeddings import EmbeddingParams, build_embeddings, load_word2vec
from xmc.nn.text import (PAD, PAD_ID, UNK, UNK_ID, TextEncoder, TextParams, Tokenizer, WordVocab, iter_padded,
                         iterate_batches, pad_batch)

__all__ = [
    "TextParams", "Tokenizer", "WordVocab", "TextEncoder", "pad_batch", "iterate_batches", "iter_padded",
    "PAD", "UNK", "PAD_ID", "UNK_ID", "EmbeddingParams", "build_embeddings", "load_word2vec",
]
