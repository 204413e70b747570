"""Raw-text corpora: fastText lines, AttentionXML's text/label file pair, JSON
lines; format detection and a single ``load_corpus`` entry point."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple, Union

from xmc.data.cache import read_xc_cached
from xmc.data.compressed import DAMAGED_GZIP, damaged, open_binary
from xmc.data.errors import DataFormatError, warn_skipped
from xmc.data.limits import line_too_long, resolve_limits, too_many_labels
from xmc.utils.modeldir import atomic_write_bytes

PathLike = Union[str, "os.PathLike[str]"]
FORMATS = ("xc", "fasttext", "jsonl", "text")
LABEL_PREFIX = "__label__"


@dataclass
class TextData:
    """Documents and their label strings, one entry per document."""

    texts: List[str]
    labels: List[List[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows) -> "TextData":
        """The documents at ``rows``, in that order."""
        return TextData([self.texts[i] for i in rows], [self.labels[i] for i in rows])


def _decode(raw: bytes, path: str, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError.at(
            path, lineno,
            f"expected UTF-8 text, found byte 0x{raw[e.start]:02x} at column {e.start + 1} "
            f"({e.reason}); re-encode the file as UTF-8") from None


def iter_lines(path: PathLike, limit: Optional[int] = None,
               max_line_bytes: Optional[int] = None) -> Iterator[Tuple[int, str]]:
    """(1-based line number, line without its line ending) of a UTF-8 file, plain or gzip-compressed.

    A line longer than ``max_line_bytes`` (see :mod:`xmc.data.limits`) is an
    error raised before more than that many bytes of it are read."""
    p = os.fspath(path)
    max_line, _ = resolve_limits(max_line_bytes, None)
    with open_binary(p) as f:
        lineno = 0
        while True:
            try:
                raw = f.readline(max_line + 2)  # + "\r\n": a line of exactly max_line bytes still fits
            except DAMAGED_GZIP as e:
                raise DataFormatError.at(p, lineno + 1, damaged(e)) from None
            if not raw:
                return
            lineno += 1
            if limit is not None and lineno > limit:
                return
            content = raw[:-1] if raw.endswith(b"\n") else raw
            if content.endswith(b"\r"):
                content = content[:-1]
            if len(content) > max_line:
                raise DataFormatError.at(p, lineno, line_too_long(max_line))
            line = _decode(raw, p, lineno)
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a BOM written by some editors is not text
            yield lineno, line.rstrip("\r\n")


def _unique_labels(names: List[str], max_labels: int, path: str, lineno: int) -> Tuple[List[str], int]:
    """First occurrences in order, and how many repeats were dropped."""
    if len(names) > max_labels:
        raise DataFormatError.at(path, lineno, too_many_labels(max_labels))
    unique = list(dict.fromkeys(names))
    return unique, len(names) - len(unique)


def _fasttext_fields(line: str, path: str, lineno: int, max_labels: int) -> Tuple[str, List[str], int]:
    labels: List[str] = []
    words: List[str] = []
    for tok in line.split():
        if tok.startswith(LABEL_PREFIX):
            name = tok[len(LABEL_PREFIX):]
            if not name:
                raise DataFormatError.at(path, lineno, f"expected a label name after '{LABEL_PREFIX}', found nothing")
            labels.append(name)
        else:
            words.append(tok)
    unique, repeats = _unique_labels(labels, max_labels, path, lineno)
    return " ".join(words), unique, repeats


def parse_fasttext_line(line: str, path: str = "<text>", lineno: int = 0,
                        max_labels_per_doc: Optional[int] = None) -> Tuple[str, List[str]]:
    """Split one fastText line into (text, labels); ``__label__x`` tokens may appear
    anywhere, and a repeated label counts once."""
    _, max_labels = resolve_limits(None, max_labels_per_doc)
    text, labels, _ = _fasttext_fields(line, path, lineno, max_labels)
    return text, labels


class _Skips:
    """Counts one kind of skip in one file and remembers the first line."""

    def __init__(self) -> None:
        self.count, self.first = 0, 0

    def add(self, lineno: int, n: int = 1) -> None:
        if n and not self.count:
            self.first = lineno
        self.count += n

    def warn(self, path: str, what: str, why: str) -> None:
        warn_skipped(path, self.count, what, f"at line {self.first}", why)


_REPEATS_WHY = "a label counts once per document"


def read_fasttext(path: PathLike, max_line_bytes: Optional[int] = None,
                  max_labels_per_doc: Optional[int] = None) -> TextData:
    """fastText supervised format: ``__label__a __label__b some text``.

    A line without labels is a document without labels. Blank lines are skipped
    and repeated labels on a line dropped, each counted in one
    :class:`~xmc.data.DataWarning` per file."""
    return _collect(fasttext_records(path, max_line_bytes, max_labels_per_doc))


def fasttext_records(path: PathLike, max_line_bytes: Optional[int] = None,
                     max_labels_per_doc: Optional[int] = None) -> Iterator[Tuple[str, List[str]]]:
    """(text, labels) per document of a fastText file, read line by line (see :func:`read_fasttext`)."""
    p = os.fspath(path)
    _, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    blanks, repeats = _Skips(), _Skips()
    for lineno, line in iter_lines(p, max_line_bytes=max_line_bytes):
        if not line.strip():
            blanks.add(lineno)
            continue
        text, labels, n_repeats = _fasttext_fields(line, p, lineno, max_labels)
        repeats.add(lineno, n_repeats)
        yield text, labels
    blanks.warn(p, "blank lines skipped", "a blank line is not a document")
    repeats.warn(p, "repeated labels dropped", _REPEATS_WHY)


def _collect(records: Iterator[Tuple[str, List[str]]]) -> TextData:
    data = TextData([], [])
    for text, labels in records:
        data.texts.append(text)
        data.labels.append(labels)
    return data


def read_text_pair(texts_path: PathLike, labels_path: PathLike, max_line_bytes: Optional[int] = None,
                   max_labels_per_doc: Optional[int] = None) -> TextData:
    """AttentionXML layout: line i of ``texts_path`` is document i, line i of
    ``labels_path`` its space-separated labels (an empty line: no labels; a
    repeated label is dropped with a :class:`~xmc.data.DataWarning`). An empty
    text line is an empty document: lines pair up by position, so none is skipped."""
    return _collect(text_pair_records(texts_path, labels_path, max_line_bytes, max_labels_per_doc))


def text_pair_records(texts_path: PathLike, labels_path: PathLike, max_line_bytes: Optional[int] = None,
                      max_labels_per_doc: Optional[int] = None) -> Iterator[Tuple[str, List[str]]]:
    """(text, labels) per document of a text/labels file pair, both read line by line
    (see :func:`read_text_pair`)."""
    tp, lp = os.fspath(texts_path), os.fspath(labels_path)
    _, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    texts = iter_lines(tp, max_line_bytes=max_line_bytes)
    labels = iter_lines(lp, max_line_bytes=max_line_bytes)
    repeats = _Skips()
    n_texts = n_labels = 0
    for _, text in texts:
        n_texts += 1
        pair = next(labels, None)
        if pair is None:
            break
        n_labels += 1
        lineno, line = pair
        unique, n_repeats = _unique_labels(line.split(), max_labels, lp, lineno)
        repeats.add(lineno, n_repeats)
        yield text, unique
    # One file ended first: count what is left of the other for the message.
    n_texts += sum(1 for _ in texts)
    n_labels += sum(1 for _ in labels)
    repeats.warn(lp, "repeated labels dropped", _REPEATS_WHY)
    if n_texts != n_labels:
        raise DataFormatError(
            f"{tp} has {n_texts} lines but {lp} has {n_labels}; expected one line per document "
            f"in both files", tp, 0)


def read_jsonl(path: PathLike, text_key: str = "text", labels_key: str = "labels",
               max_line_bytes: Optional[int] = None, max_labels_per_doc: Optional[int] = None) -> TextData:
    """JSON lines: one object per line with a string ``text`` and a list ``labels``
    (strings; integers are turned into strings). Blank lines are skipped and
    repeated labels dropped, each counted in one :class:`~xmc.data.DataWarning`."""
    return _collect(jsonl_records(path, text_key, labels_key, max_line_bytes, max_labels_per_doc))


def jsonl_records(path: PathLike, text_key: str = "text", labels_key: str = "labels",
                  max_line_bytes: Optional[int] = None,
                  max_labels_per_doc: Optional[int] = None) -> Iterator[Tuple[str, List[str]]]:
    """(text, labels) per document of a JSON lines file, read line by line (see :func:`read_jsonl`)."""
    p = os.fspath(path)
    _, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    blanks, repeats = _Skips(), _Skips()
    for lineno, line in iter_lines(p, max_line_bytes=max_line_bytes):
        if not line.strip():
            blanks.add(lineno)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError.at(p, lineno, f"expected a JSON object, found invalid JSON "
                                               f"({e.msg} at column {e.colno}): {line[:40]!r}") from None
        except (ValueError, RecursionError) as e:  # an int of > 4300 digits; nesting deeper than the stack
            raise DataFormatError.at(p, lineno, f"expected a JSON object, found JSON Python cannot load "
                                               f"({str(e)[:60]}): {line[:40]!r}") from None
        if not isinstance(obj, dict):
            raise DataFormatError.at(p, lineno, f"expected a JSON object, found {type(obj).__name__}")
        for key in (text_key, labels_key):
            if key not in obj:
                raise DataFormatError.at(p, lineno, f"expected key {key!r}, found keys {sorted(obj)[:8]}")
        text, labels = obj[text_key], obj[labels_key]
        if not isinstance(text, str):
            raise DataFormatError.at(p, lineno, f"expected {text_key!r} to be a string, found {type(text).__name__}")
        if not isinstance(labels, list) or not all(
                isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool)) for x in labels):
            raise DataFormatError.at(p, lineno, f"expected {labels_key!r} to be a list of strings, "
                                               f"found {json.dumps(labels)[:40]}")
        names, n_repeats = _unique_labels([str(x) for x in labels], max_labels, p, lineno)
        repeats.add(lineno, n_repeats)
        yield text, names
    blanks.warn(p, "blank lines skipped", "a blank line is not a document")
    repeats.warn(p, "repeated labels dropped", _REPEATS_WHY)


def write_jsonl(path: PathLike, data: TextData, text_key: str = "text", labels_key: str = "labels") -> None:
    """Write ``data`` as the JSON lines :func:`read_jsonl` reads back to an equal
    TextData: one ``{"text": ..., "labels": [...]}`` per line, UTF-8, written atomically."""
    from pathlib import Path

    if data.labels and len(data.labels) != len(data.texts):
        raise ValueError(f"{len(data.texts)} texts but {len(data.labels)} label lists")
    labels = data.labels or [[] for _ in data.texts]
    # ensure_ascii=False keeps non-English text readable; the file is UTF-8 either way.
    payload = "".join(json.dumps({text_key: t, labels_key: list(ls)}, ensure_ascii=False) + "\n"
                      for t, ls in zip(data.texts, labels))
    atomic_write_bytes(Path(os.fspath(path)), payload.encode("utf-8"))


_XC_HEADER = re.compile(r"^[ \t]*\d+[ \t]+\d+[ \t]+\d+[ \t]*$")
_XC_LINE = re.compile(r"^(?:\d+(?:,\d+)*|\d+:\S+)?(?:[ \t]+\d+:\S+)*[ \t]*$")


def detect_format(path: PathLike, sample_lines: int = 5, max_line_bytes: Optional[int] = None) -> str:
    """Guess ``"xc"``, ``"fasttext"``, ``"jsonl"`` or ``"text"`` from the first lines."""
    p = os.fspath(path)
    lines = [line for _, line in iter_lines(p, limit=200, max_line_bytes=max_line_bytes)
             if line.strip()][:sample_lines]
    if not lines:
        raise DataFormatError.at(p, 0, "the file is empty; cannot tell its format")
    if lines[0].lstrip().startswith("{"):
        return "jsonl"
    if any(tok.startswith(LABEL_PREFIX) for line in lines for tok in line.split()):
        return "fasttext"
    if _XC_HEADER.match(lines[0]) or all(_XC_LINE.match(line) for line in lines):
        return "xc"
    return "text"


def resolve_format(path: PathLike, format: Optional[str], labels_path: Optional[PathLike],
                   max_line_bytes: Optional[int] = None, max_labels_per_doc: Optional[int] = None) -> str:
    """``format``, or the detected one (``"text"`` whenever ``labels_path`` is given), checked; the
    limits are checked first, so a bad value fails before any file is opened."""
    resolve_limits(max_line_bytes, max_labels_per_doc)
    if format is None:
        format = "text" if labels_path is not None else detect_format(path, max_line_bytes=max_line_bytes)
    if format not in FORMATS:
        raise ValueError(f"unknown corpus format {format!r}; expected one of {', '.join(FORMATS)}")
    return format


def text_records(path: PathLike, format: str, labels_path: Optional[PathLike] = None,
                 max_line_bytes: Optional[int] = None,
                 max_labels_per_doc: Optional[int] = None) -> Iterator[Tuple[str, List[str]]]:
    """(text, labels) per document of a raw-text corpus of ``format`` (fasttext, jsonl or text)."""
    if format == "fasttext":
        return fasttext_records(path, max_line_bytes, max_labels_per_doc)
    if format == "jsonl":
        return jsonl_records(path, max_line_bytes=max_line_bytes, max_labels_per_doc=max_labels_per_doc)
    if labels_path is None:
        raise ValueError(
            f"{os.fspath(path)}: looks like plain text (not XC, fastText or JSON lines); "
            f"pass labels_path with one line of space-separated labels per document")
    return text_pair_records(path, labels_path, max_line_bytes, max_labels_per_doc)


def load_corpus(path: PathLike, format: Optional[str] = None, labels_path: Optional[PathLike] = None,
                n_features: Optional[int] = None, n_labels: Optional[int] = None, threads: int = 0,
                max_line_bytes: Optional[int] = None, max_labels_per_doc: Optional[int] = None,
                cache: Optional[bool] = None):
    """Read a corpus in any supported format: XCData for ``"xc"``, TextData otherwise.

    ``format=None`` detects it (``"text"`` whenever ``labels_path`` is given).
    ``cache``: for XC files, whether to go through the binary cache of
    :mod:`xmc.data.cache` (None: for large files only).
    ``max_line_bytes`` / ``max_labels_per_doc`` bound what one line may hold
    (:mod:`xmc.data.limits`: environment variable, then default, when None).
    """
    format = resolve_format(path, format, labels_path, max_line_bytes, max_labels_per_doc)
    if format == "xc":
        return read_xc_cached(path, cache, n_features=n_features, n_labels=n_labels, threads=threads,
                              max_line_bytes=max_line_bytes, max_labels_per_doc=max_labels_per_doc)
    return _collect(text_records(path, format, labels_path, max_line_bytes, max_labels_per_doc))
