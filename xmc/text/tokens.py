"""Raw text -> padded word-id batches for the deep models.

``TextEncoder`` bundles a ``Tokenizer`` and a ``WordVocab`` with their
``TextParams``; a deep model saves it beside its weights, so predicting on raw
text needs nothing else. ``pad_batch`` turns id arrays into the ``(ids, mask)``
tensors the encoders take, and ``iterate_batches`` yields index batches,
optionally grouped by length to cut padding.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from xmc.params import Params, param
from xmc.utils.modeldir import ModelFormatError, load_json, save_json

PathLike = Union[str, "os.PathLike[str]"]
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
WORDS_JSON = "words.json"
TEXT_PARAMS_JSON = "text_params.json"
WORDS_KIND = "words"  # the text_params.json kind of a word-vocabulary encoder
TEXT_FORMAT_VERSION = 1  # of every text encoder's files, the word-piece one (xmc.text.minilm) included

# Runs of letters or digits of any script (``[^\W_]`` is \w without the
# underscore), with simple inner apostrophes kept so "don't" and "reuters's"
# stay one token; the straight and the typographic apostrophe are both kept as
# written. Everything else (punctuation, underscores, symbols, emoji) separates
# tokens. It matches upper case too, so it works with ``lowercase=False``.
DEFAULT_TOKEN_PATTERN = r"[^\W_]+(?:['\u2019][^\W_]+)*"


MAX_COUNT = 2**31 - 1  # bound of token and vocabulary counts (int64 arrays hold them; a forged 10**30 must not)


@dataclass
class TextParams(Params):
    """How raw text becomes word ids.

    ``token_pattern`` is a Python regex whose matches are the tokens (found with
    ``findall`` after lower-casing when ``lowercase``); it must have no capturing
    groups. ``min_count``: least number of occurrences for a word to get an id;
    ``max_vocab``: most ids in all, ``<pad>`` and ``<unk>`` included;
    ``max_len``: documents are cut to their first ``max_len`` tokens.
    """

    lowercase: bool = param(True, "lower-case the text before finding tokens")
    token_pattern: str = param(DEFAULT_TOKEN_PATTERN, "regex whose matches are the tokens (no capturing groups)")
    min_count: int = param(1, "least occurrences in the training texts for a word to get an id")
    max_vocab: int = param(200_000, "most word ids, <pad> and <unk> included")
    max_len: int = param(500, "documents are cut to their first max_len tokens")

    def validate(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if not 2 <= self.max_vocab <= MAX_COUNT:
            raise ValueError(f"max_vocab must be in [2, {MAX_COUNT}] (<pad> and <unk> at least), got {self.max_vocab}")
        if not 1 <= self.max_len <= MAX_COUNT:
            # A saved params.json may be forged: 10**30 tokens overflowed numpy at prediction time.
            raise ValueError(f"max_len must be in [1, {MAX_COUNT}], got {self.max_len}")
        try:
            groups = re.compile(self.token_pattern).groups
        except re.error as e:
            raise ValueError(f"token_pattern {self.token_pattern!r} is not a valid regex: {e}") from None
        if groups:
            # findall would return the groups instead of the whole matches.
            raise ValueError(f"token_pattern {self.token_pattern!r} has {groups} capturing group(s); "
                             f"use non-capturing groups (?:...)")


class Tokenizer:
    """Splits text into tokens with one compiled regex."""

    def __init__(self, params: Optional[TextParams] = None) -> None:
        self.params = params or TextParams()
        self._findall = re.compile(self.params.token_pattern).findall
        self._lowercase = self.params.lowercase

    def tokenize(self, text: str) -> List[str]:
        return self._findall(text.lower() if self._lowercase else text)

    def tokenize_many(self, texts: Iterable[str]) -> List[List[str]]:
        findall = self._findall
        if self._lowercase:
            return [findall(t.lower()) for t in texts]
        return [findall(t) for t in texts]


class WordVocab:
    """Words <-> ids; id 0 is ``<pad>``, id 1 is ``<unk>`` (every word not in the vocabulary)."""

    def __init__(self, words: Sequence[str] = ()) -> None:
        """``words``: the vocabulary after the two reserved entries, id 2 first."""
        self._words: List[str] = [PAD, UNK]
        self._index: Dict[str, int] = {PAD: PAD_ID, UNK: UNK_ID}
        for w in words:
            if not isinstance(w, str):
                raise TypeError(f"words must be strings, found {type(w).__name__} {w!r}")
            if w in self._index:
                raise ValueError(f"word {w!r} appears twice in the vocabulary (or is a reserved name)")
            self._index[w] = len(self._words)
            self._words.append(w)

    @classmethod
    def fit(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1,
            max_size: Optional[int] = None) -> "WordVocab":
        """Words seen at least ``min_count`` times, most frequent first; equal
        counts in alphabetical order, so the ids depend neither on document
        order nor on hashing. ``max_size`` caps ``len(vocab)`` (the two
        reserved ids included)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (<pad> and <unk>), got {max_size}")
        counts: Counter = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):  # would count its characters
                raise TypeError(f"expected lists of tokens, found the string {tokens[:40]!r}; tokenize first")
            counts.update(tokens)
        for reserved in (PAD, UNK):
            counts.pop(reserved, None)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[:max_size - 2]
        return cls(kept)

    @property
    def words(self) -> List[str]:
        """Every entry by id, ``<pad>`` and ``<unk>`` included."""
        return list(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordVocab) and self._words == other._words

    def id_of(self, word: str) -> int:
        return self._index.get(word, UNK_ID)

    def encode(self, token_lists: Iterable[Sequence[str]], max_len: Optional[int] = None) -> List[np.ndarray]:
        """One int32 array of ids per document, cut to its first ``max_len`` tokens."""
        get = self._index.get
        out = []
        for tokens in token_lists:
            if max_len is not None:
                tokens = tokens[:max_len]
            out.append(np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens)))
        return out

    def save(self, directory: PathLike) -> None:
        """Write ``words.json`` into ``directory`` (atomically)."""
        save_json(Path(directory) / WORDS_JSON, {"format_version": TEXT_FORMAT_VERSION, "words": self._words})

    @classmethod
    def load(cls, directory: PathLike) -> "WordVocab":
        path = Path(directory) / WORDS_JSON
        obj = load_json(path)
        if not isinstance(obj, dict) or not isinstance(obj.get("words"), list):
            found = f"keys {sorted(obj)[:8]}" if isinstance(obj, dict) else type(obj).__name__
            raise ModelFormatError(f"{path}: expected an object with a 'words' list, found {found}")
        version = obj.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ModelFormatError(f"{path}: format version {version!r} is not one xmc wrote")
        if version > TEXT_FORMAT_VERSION:
            raise ModelFormatError(f"{path}: format version {version} is newer than this xmc reads "
                                   f"({TEXT_FORMAT_VERSION}); upgrade xmc")
        words = obj["words"]
        if words[:2] != [PAD, UNK]:
            raise ModelFormatError(f"{path}: expected the first two words to be {PAD!r} and {UNK!r}, "
                                   f"found {words[:2]!r}")
        bad = next((i for i, w in enumerate(words) if not isinstance(w, str)), None)
        if bad is not None:
            raise ModelFormatError(f"{path}: word {bad} is {words[bad]!r}, expected a string")
        try:
            return cls(words[2:])
        except ValueError as e:
            raise ModelFormatError(f"{path}: {e}") from None


class TextEncoder:
    """Tokenizer + word vocabulary + their parameters: raw texts -> id arrays."""

    def __init__(self, params: Optional[TextParams] = None, vocab: Optional[WordVocab] = None) -> None:
        self.params = params or TextParams()
        self.tokenizer = Tokenizer(self.params)
        self.vocab = vocab

    def fit(self, texts: Iterable[str]) -> "TextEncoder":
        return self.fit_tokens(self.tokenizer.tokenize_many(texts))

    def fit_tokens(self, token_lists: Iterable[Sequence[str]]) -> "TextEncoder":
        """Fit on texts already split by ``self.tokenizer`` (tokenize once, also for skip-gram)."""
        self.vocab = WordVocab.fit(token_lists, self.params.min_count, self.params.max_vocab)
        return self

    def encode(self, texts: Iterable[str]) -> List[np.ndarray]:
        return self.encode_tokens(self.tokenizer.tokenize_many(texts))

    def encode_tokens(self, token_lists: Iterable[Sequence[str]]) -> List[np.ndarray]:
        if self.vocab is None:
            raise RuntimeError("TextEncoder is not fitted; call fit, or load one")
        return self.vocab.encode(token_lists, self.params.max_len)

    def save(self, directory: PathLike) -> None:
        """Write ``text_params.json`` and ``words.json`` into ``directory``."""
        if self.vocab is None:
            raise RuntimeError("TextEncoder is not fitted; nothing to save")
        save_json(Path(directory) / TEXT_PARAMS_JSON, {"format_version": TEXT_FORMAT_VERSION,
                                                       "params": self.params.to_dict()})
        self.vocab.save(directory)

    @classmethod
    def load(cls, directory: PathLike) -> "TextEncoder":
        kind, params = read_text_params(directory)
        if kind != WORDS_KIND:
            raise ModelFormatError(f"{Path(directory) / TEXT_PARAMS_JSON}: a {kind!r} text encoder, not a word "
                                   f"vocabulary; load it with xmc.text.load_text_encoder")
        return cls(params, WordVocab.load(directory))


def read_text_params(directory: PathLike) -> Tuple[str, TextParams]:
    """The kind (``"words"``, or a pre-trained model's own tokenizer) and params of a saved text encoder."""
    path = Path(directory) / TEXT_PARAMS_JSON
    obj = load_json(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("params"), dict):
        raise ModelFormatError(f"{path}: expected an object with a 'params' object")
    version = obj.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > TEXT_FORMAT_VERSION:
        raise ModelFormatError(f"{path}: format version {version!r} is not one this xmc reads "
                               f"({TEXT_FORMAT_VERSION})")
    try:
        params = TextParams.from_dict(obj["params"], strict=False)
    except (TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}: invalid text parameters: {e}") from None
    kind = obj.get("kind", WORDS_KIND)
    if not isinstance(kind, str):
        raise ModelFormatError(f"{path}: text encoder kind {kind!r} is not a string")
    return kind, params


def pad_batch(seqs: Sequence[np.ndarray], max_len: Optional[int] = None):
    """Stack id arrays into ``(ids, mask)``: an int64 tensor (B, T) padded with
    ``<pad>`` (0) and a bool tensor (B, T), True at real tokens.

    T is the longest sequence in the batch, cut to ``max_len``, and at least 1:
    an empty document becomes a single ``<pad>`` with mask False, which the
    label-wise attention turns into an all-zero context (no NaN).
    """
    import torch

    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    if max_len is not None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        np.minimum(lengths, max_len, out=lengths)
    width = max(1, int(lengths.max())) if len(seqs) else 1
    ids = np.zeros((len(seqs), width), dtype=np.int64)
    for row, (s, n) in enumerate(zip(seqs, lengths)):
        ids[row, :n] = s[:n]
    mask = np.arange(width)[None, :] < lengths[:, None]
    return torch.from_numpy(ids), torch.from_numpy(mask)


def iterate_batches(n: int, batch_size: int, shuffle: bool = False, seed: Optional[int] = 0,
                    lengths: Optional[Sequence[int]] = None, bucket_batches: int = 50) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` once, ``batch_size`` at a time (the last may be smaller).

    ``shuffle``: a random order drawn from ``seed`` (pass ``seed + epoch`` for a
    new order each epoch). ``lengths``: group documents of similar length to
    cut padding: the (shuffled) order is cut into buckets of ``bucket_batches``
    batches, each bucket is sorted by length and split into batches, and with
    ``shuffle`` the batches are then shuffled so lengths do not trend over an
    epoch. Without ``shuffle`` and with ``lengths`` the batches keep the bucket
    order; predictions are put back in place by the returned indices.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if bucket_batches < 1:
        raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    if lengths is None:
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]
        return
    lens = np.asarray(lengths)
    if lens.shape != (n,):
        raise ValueError(f"lengths has shape {lens.shape}, expected ({n},)")
    bucket = batch_size * bucket_batches
    batches: List[np.ndarray] = []
    for start in range(0, n, bucket):
        chunk = order[start:start + bucket]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    yield from batches


def iter_padded(seqs: Sequence[np.ndarray], batch_size: int, shuffle: bool = False, seed: Optional[int] = 0,
                sort_by_length: bool = True, max_len: Optional[int] = None
                ) -> Iterator[Tuple[np.ndarray, "object", "object"]]:
    """``(indices, ids, mask)`` per batch over ``seqs``: ``iterate_batches`` then ``pad_batch``."""
    lengths = [len(s) for s in seqs] if sort_by_length else None
    for idx in iterate_batches(len(seqs), batch_size, shuffle, seed, lengths):
        ids, mask = pad_batch([seqs[i] for i in idx], max_len)
        yield idx, ids, mask
