"""xmc.text: what the deep models share.

- :mod:`xmc.text.tokens`: :class:`TextParams`, :class:`Tokenizer`, :class:`WordVocab`
  and :class:`TextEncoder` (raw text -> word-id arrays, saved as JSON),
  :func:`pad_batch` (-> ``(ids, mask)`` tensors) and :func:`iterate_batches`.
- :mod:`xmc.text.embeddings`: :class:`EmbeddingParams` and :func:`build_embeddings`
  (random, skip-gram on the training texts, or a word2vec file).

Torch and gensim are imported only by the functions that use them.
"""
from pathlib import Path
from typing import Union

from xmc.text.embeddings import EmbeddingParams, build_embeddings, load_word2vec
from xmc.text.minilm import WORDPIECE_KIND, WordPieceEncoder
from xmc.text.tokens import (PAD, PAD_ID, TEXT_PARAMS_JSON, UNK, UNK_ID, WORDS_KIND, TextEncoder, TextParams, Tokenizer,
                             WordVocab, iter_padded, iterate_batches, pad_batch, read_text_params)
from xmc.utils.modeldir import ModelFormatError


def load_text_encoder(directory: Union[str, Path]) -> Union[TextEncoder, WordPieceEncoder]:
    """A saved text encoder of either kind: a word vocabulary, or a pre-trained model's WordPiece tokenizer."""
    kind, params = read_text_params(directory)
    if kind == WORDPIECE_KIND:  # a pre-trained encoder's own tokenizer (LACO with pretrained_encoder minilm)
        return WordPieceEncoder.load(directory, params)
    if kind != WORDS_KIND:
        raise ModelFormatError(f"{Path(directory) / TEXT_PARAMS_JSON}: text encoder kind {kind!r} is not one this "
                               f"xmc reads ({WORDS_KIND!r}, {WORDPIECE_KIND!r})")
    return TextEncoder.load(directory)


__all__ = [
    "TextParams", "Tokenizer", "WordVocab", "TextEncoder", "pad_batch", "iterate_batches", "iter_padded",
    "PAD", "UNK", "PAD_ID", "UNK_ID", "EmbeddingParams", "build_embeddings", "load_word2vec", "load_text_encoder",
]
