"""Initial word embeddings for the deep models: random, skip-gram trained on
the training texts (gensim ``Word2Vec(sg=1)``, as in the AttentionXML and LDGN
papers), or read from a word2vec file (text or binary)."""
from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from xmc.data.errors import DataFormatError
from xmc.params import Params, param
from xmc.text.tokens import PAD_ID, UNK, WordVocab

log = logging.getLogger(__name__)
SOURCES = ("random", "skipgram")
_SAMPLE_BYTES = 1 << 16
_READ_BLOCK = 1 << 22


@dataclass
class EmbeddingParams(Params):
    """``source``: ``"random"``, ``"skipgram"`` or the path of a word2vec file
    (``binary``: None detects text or binary). ``init_scale``: random rows are
    uniform in [-init_scale, init_scale] (0.25, as Kim 2014 for unseen words).
    ``window``, ``epochs``, ``negative``, ``threads``: skip-gram training
    (its min count is the vocabulary's: every vocabulary word is trained).
    ``seed``: random rows and skip-gram; skip-gram is reproducible with ``threads=1``."""

    source: str = param("random", "random, skipgram (trained on the training texts) or a word2vec file's path")
    dim: int = param(300, "word vector size")
    binary: Optional[bool] = param(None, "word2vec file: binary (true), text (false) or detected (null)")
    init_scale: float = param(0.25, "random vectors are uniform in [-init_scale, init_scale]")
    window: int = param(5, "skip-gram context window")
    epochs: int = param(5, "skip-gram passes over the texts")
    negative: int = param(5, "skip-gram negative samples (0: hierarchical softmax)")
    seed: int = param(0, "seed of the random vectors and of skip-gram")
    threads: int = param(0, "skip-gram worker threads (0: all cores; 1 makes skip-gram reproducible)")

    def validate(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {self.init_scale}")
        for name in ("window", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: all cores), got {self.threads}")
        if self.negative < 0:
            raise ValueError(f"negative must be >= 0, got {self.negative}")


def build_embeddings(vocab: WordVocab, params: Optional[EmbeddingParams] = None,
                     token_lists: Optional[Sequence[Sequence[str]]] = None,
                     on_epoch: Optional[Callable[[], None]] = None) -> np.ndarray:
    """A float32 matrix (len(vocab), dim) whose row i is the vector of word id i; row 0 (``<pad>``) is zero.

    ``token_lists`` (the tokenized training texts) is needed for ``"skipgram"``, which calls ``on_epoch``
    after each of its epochs.
    Words without a trained or loaded vector get random rows of the same
    spread as the vectors found, so they neither dominate nor vanish.
    """
    p = params or EmbeddingParams()
    rng = np.random.default_rng(p.seed)
    if p.source == "random":
        out = rng.uniform(-p.init_scale, p.init_scale, (len(vocab), p.dim)).astype(np.float32)
    elif p.source == "skipgram":
        if token_lists is None:
            raise ValueError("source='skipgram' trains on the training texts: pass token_lists "
                             "(TextEncoder.tokenizer.tokenize_many(texts))")
        out, found = _skipgram(vocab, p, token_lists, on_epoch)
        _fill_missing(out, found, rng, p.init_scale)
        log.info("skip-gram: trained vectors for %d of %d vocabulary words", int(found[2:].sum()), len(vocab) - 2)
    else:
        if not os.path.isfile(p.source):
            raise FileNotFoundError(f"{p.source}: no such word2vec file (source must be "
                                    f"{' or '.join(repr(s) for s in SOURCES)} or the path of a word2vec file)")
        out, found = load_word2vec(p.source, vocab, binary=p.binary)
        if out.shape[1] != p.dim:
            raise ValueError(f"{p.source}: holds {out.shape[1]}-dimensional vectors but dim is {p.dim}; "
                             f"set dim={out.shape[1]}")
        _fill_missing(out, found, rng, p.init_scale)
        log.info("%s: found %d of %d vocabulary words", p.source, int(found[2:].sum()), len(vocab) - 2)
    out[PAD_ID] = 0.0
    return out


def _fill_missing(out: np.ndarray, found: np.ndarray, rng: np.random.Generator, init_scale: float) -> None:
    missing = ~found
    if not missing.any():
        return
    if found.any():
        # Uniform in [-a, a] has standard deviation a / sqrt(3).
        init_scale = float(np.sqrt(3.0) * out[found].std()) or init_scale
    out[missing] = rng.uniform(-init_scale, init_scale, (int(missing.sum()), out.shape[1]))


def _stable_hash(text: str) -> int:
    # gensim seeds each word's initial vector with hashfxn(word + seed); Python's
    # own str hash changes per process, which would make training irreproducible.
    return zlib.crc32(text.encode("utf-8"))


def _skipgram(vocab: WordVocab, p: EmbeddingParams, token_lists: Sequence[Sequence[str]],
              on_epoch: Optional[Callable[[], None]] = None) -> Tuple[np.ndarray, np.ndarray]:
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    class EpochEnd(CallbackAny2Vec):
        def on_epoch_end(self, model) -> None:
            if on_epoch is not None:
                on_epoch()

    # Words outside the vocabulary become <unk>, so its row learns the contexts of rare words.
    sentences = [[w if w in vocab else UNK for w in tokens] for tokens in token_lists]
    model = Word2Vec(sentences, vector_size=p.dim, window=p.window, min_count=1, sg=1, negative=p.negative,
                     hs=0 if p.negative > 0 else 1, epochs=p.epochs, seed=p.seed,
                     workers=p.threads or os.cpu_count() or 1,
                     hashfxn=_stable_hash, callbacks=[EpochEnd()])
    out = np.zeros((len(vocab), p.dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, w in enumerate(vocab.words):
        j = model.wv.key_to_index.get(w)
        if j is not None and i != PAD_ID:
            out[i] = model.wv.vectors[j]
            found[i] = True
    return out, found


def detect_word2vec_binary(path: str) -> bool:
    """True when the rows after the ``count dim`` header are raw float32 bytes, not text."""
    with open(path, "rb") as f:
        f.readline()
        sample = f.read(_SAMPLE_BYTES)
    if b"\0" in sample:
        return True
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # not just a character cut by the sample's end
            return True
        text = sample[:e.start].decode("utf-8")
    return any(ord(c) < 32 and c not in "\t\n\r\f\v" for c in text)


def _parse_header(line: bytes, path: str) -> Tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(x.isdigit() for x in parts):
        shown = line[:60].decode("utf-8", "replace").rstrip("\r\n")
        raise DataFormatError.at(path, 1, f"expected a word2vec header of two integers 'count dim', found "
                                          f"{shown!r} (a GloVe file needs that header line added)")
    count, dim = int(parts[0]), int(parts[1])
    if dim < 1:
        raise DataFormatError.at(path, 1, f"expected a dimension >= 1 in the header, found {dim}")
    return count, dim


class _Matcher:
    """Keeps the vector of each vocabulary word: an exact match wins over a lower-cased one."""

    def __init__(self, vocab: WordVocab, dim: int, lowercase: bool) -> None:
        self.vocab, self.lowercase = vocab, lowercase
        self.out = np.zeros((len(vocab), dim), dtype=np.float32)
        self.found = np.zeros(len(vocab), dtype=bool)
        self.exact = np.zeros(len(vocab), dtype=bool)

    def wants(self, word: str) -> Tuple[int, bool]:
        """(row to write for ``word`` or -1, whether it is an exact match)."""
        if word in self.vocab:
            i = self.vocab.id_of(word)
            return (i if i != PAD_ID and not self.exact[i] else -1), True
        if self.lowercase:
            lw = word.lower()
            if lw in self.vocab:
                i = self.vocab.id_of(lw)
                return (i if i != PAD_ID and not self.found[i] else -1), False
        return -1, False

    def put(self, i: int, exact: bool, values: np.ndarray) -> None:
        self.out[i] = values
        self.found[i] = True
        self.exact[i] = exact


def load_word2vec(path: str, vocab: WordVocab, binary: Optional[bool] = None,
                  lowercase: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Read the vectors of ``vocab``'s words from a word2vec file.

    Returns ``(matrix (len(vocab), dim) float32, found bool (len(vocab),))``;
    rows not found are zero. ``binary=None`` detects the format. ``lowercase``
    (default: whether every vocabulary word is lower-case) also matches file
    words by their lower-cased form, an exact match taking precedence, then the
    first (in word2vec files: most frequent) cased form. A malformed file raises
    ``DataFormatError`` naming the file and the line (text) or entry and byte
    offset (binary).
    """
    path = os.fspath(path)
    if binary is None:
        binary = detect_word2vec_binary(path)
    if lowercase is None:
        lowercase = all(w == w.lower() for w in vocab.words[2:])
    with open(path, "rb") as f:
        count, dim = _parse_header(f.readline(), path)
        m = _Matcher(vocab, dim, lowercase)
        (_read_binary if binary else _read_text)(f, path, count, dim, m)
    return m.out, m.found


def _read_text(f, path: str, count: int, dim: int, m: _Matcher) -> None:
    n = 0
    for lineno, raw in enumerate(f, start=2):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError.at(path, lineno, f"expected UTF-8 text, found byte 0x{raw[e.start]:02x} at "
                                                   f"column {e.start + 1}; is this a binary word2vec file? "
                                                   f"(pass binary=True)") from None
        line = line.rstrip()
        # Count the fields without splitting: most rows are words we do not want.
        if line.count(" ") != dim:
            raise DataFormatError.at(path, lineno, f"expected a word and {dim} values (the header's dimension), "
                                                   f"found {len(line.split(' ')) - 1} values after "
                                                   f"{line.split(' ', 1)[0][:40]!r}")
        n += 1
        if n > count:
            raise DataFormatError.at(path, lineno, f"the header says {count} vectors but there are more")
        word = line[:line.find(" ")]
        i, exact = m.wants(word)
        if i < 0:
            continue
        parts = line.split(" ")
        try:
            values = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            bad = next(x for x in parts[1:] if not _is_float(x))
            raise DataFormatError.at(path, lineno, f"expected {dim} numbers after {word[:40]!r}, "
                                                   f"found {bad[:20]!r}") from None
        m.put(i, exact, values)
    if n < count:
        raise DataFormatError.at(path, 0, f"the header says {count} vectors but the file holds {n}; "
                                          f"truncated or the header is wrong")


def _is_float(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


def _read_binary(f, path: str, count: int, dim: int, m: _Matcher) -> None:
    # Each entry is "word " then dim little-endian float32, often followed by "\n".
    width = 4 * dim
    buf, pos, offset = b"", 0, f.tell()  # offset: file position of buf[0]

    def fill(need: int) -> bool:
        nonlocal buf, pos, offset
        if len(buf) - pos >= need:
            return True
        offset += pos
        buf = buf[pos:] + f.read(max(_READ_BLOCK, need))
        pos = 0
        return len(buf) >= need

    for entry in range(1, count + 1):
        fill(1)
        while pos < len(buf) and buf[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1
            fill(1)
        start = offset + pos
        space = buf.find(b" ", pos)
        while space < 0:
            if not fill(len(buf) - pos + 1):
                what = "ends" if pos >= len(buf) else "ends inside a word"
                raise DataFormatError(f"{path}: entry {entry} at byte {start:,}: the file {what}, but the header "
                                      f"says {count} vectors; truncated or the header is wrong", path, 0)
            space = buf.find(b" ", pos)
        if space - pos > 1000:
            raise DataFormatError(f"{path}: entry {entry} at byte {start:,}: expected a word then a space, found "
                                  f"{space - pos:,} bytes without one; is this a text word2vec file? "
                                  f"(pass binary=False)", path, 0)
        word = buf[pos:space].decode("utf-8", "replace")
        pos = space + 1
        if not fill(width):
            raise DataFormatError(f"{path}: entry {entry} ({word[:40]!r}) at byte {start:,}: expected {width:,} "
                                  f"bytes of float32 values, found {len(buf) - pos:,}; the file is truncated",
                                  path, 0)
        i, exact = m.wants(word)
        if i >= 0:
            m.put(i, exact, np.frombuffer(buf, dtype="<f4", count=dim, offset=pos))
        pos += width
