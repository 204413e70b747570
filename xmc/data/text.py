"""Raw-text corpora: fastText lines, AttentionXML's text/label file pair, JSON
lines; format detection and a single ``load_corpus`` entry point."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple, Union

from xmc.data.errors import DataFormatError

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


def _open_binary(path: PathLike):
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: no such file")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{p}: is a directory, expected a text file")
    return open(p, "rb")


def _decode(raw: bytes, path: str, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError.at(
            path, lineno,
            f"expected UTF-8 text, found byte 0x{raw[e.start]:02x} at column {e.start + 1} "
            f"({e.reason}); re-encode the file as UTF-8") from None


def iter_lines(path: PathLike, limit: Optional[int] = None) -> Iterator[Tuple[int, str]]:
    """(1-based line number, line without its line ending) of a UTF-8 file."""
    p = os.fspath(path)
    with _open_binary(p) as f:
        for lineno, raw in enumerate(f, start=1):
            if limit is not None and lineno > limit:
                return
            line = _decode(raw, p, lineno)
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a BOM written by some editors is not text
            yield lineno, line.rstrip("\r\n")


def parse_fasttext_line(line: str, path: str = "<text>", lineno: int = 0) -> Tuple[str, List[str]]:
    """Split one fastText line into (text, labels); ``__label__x`` tokens may appear anywhere."""
    labels: List[str] = []
    words: List[str] = []
    for tok in line.split():
        if tok.startswith(LABEL_PREFIX):
            name = tok[len(LABEL_PREFIX):]
            if not name:
                raise DataFormatError.at(path, lineno, f"expected a label name after '{LABEL_PREFIX}', found nothing")
            if name not in labels:
                labels.append(name)
        else:
            words.append(tok)
    return " ".join(words), labels


def read_fasttext(path: PathLike) -> TextData:
    """fastText supervised format: ``__label__a __label__b some text``. Blank lines are skipped."""
    p = os.fspath(path)
    data = TextData([], [])
    for lineno, line in iter_lines(p):
        if not line.strip():
            continue
        text, labels = parse_fasttext_line(line, p, lineno)
        data.texts.append(text)
        data.labels.append(labels)
    return data


def read_text_pair(texts_path: PathLike, labels_path: PathLike) -> TextData:
    """AttentionXML layout: line i of ``texts_path`` is document i, line i of
    ``labels_path`` its space-separated labels (an empty line: no labels)."""
    tp, lp = os.fspath(texts_path), os.fspath(labels_path)
    texts = [line for _, line in iter_lines(tp)]
    labels = [line.split() for _, line in iter_lines(lp)]
    if len(texts) != len(labels):
        raise DataFormatError(
            f"{tp} has {len(texts)} lines but {lp} has {len(labels)}; expected one line per document "
            f"in both files", tp, 0)
    return TextData(texts, labels)


def read_jsonl(path: PathLike, text_key: str = "text", labels_key: str = "labels") -> TextData:
    """JSON lines: one object per line with a string ``text`` and a list ``labels``
    (strings; integers are turned into strings). Blank lines are skipped."""
    p = os.fspath(path)
    data = TextData([], [])
    for lineno, line in iter_lines(p):
        if not line.strip():
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
        names: List[str] = []
        for x in labels:
            if str(x) not in names:
                names.append(str(x))
        data.texts.append(text)
        data.labels.append(names)
    return data


def write_jsonl(path: PathLike, data: TextData, text_key: str = "text", labels_key: str = "labels") -> None:
    """Write ``data`` as the JSON lines :func:`read_jsonl` reads back to an equal
    TextData: one ``{"text": ..., "labels": [...]}`` per line, UTF-8, written atomically."""
    from pathlib import Path

    from xmc.utils.modeldir import atomic_write_bytes

    if data.labels and len(data.labels) != len(data.texts):
        raise ValueError(f"{len(data.texts)} texts but {len(data.labels)} label lists")
    labels = data.labels or [[] for _ in data.texts]
    # ensure_ascii=False keeps non-English text readable; the file is UTF-8 either way.
    payload = "".join(json.dumps({text_key: t, labels_key: list(ls)}, ensure_ascii=False) + "\n"
                      for t, ls in zip(data.texts, labels))
    atomic_write_bytes(Path(os.fspath(path)), payload.encode("utf-8"))


_XC_HEADER = re.compile(r"^[ \t]*\d+[ \t]+\d+[ \t]+\d+[ \t]*$")
_XC_LINE = re.compile(r"^(?:\d+(?:,\d+)*|\d+:\S+)?(?:[ \t]+\d+:\S+)*[ \t]*$")


def detect_format(path: PathLike, sample_lines: int = 5) -> str:
    """Guess ``"xc"``, ``"fasttext"``, ``"jsonl"`` or ``"text"`` from the first lines."""
    p = os.fspath(path)
    lines = [line for _, line in iter_lines(p, limit=200) if line.strip()][:sample_lines]
    if not lines:
        raise DataFormatError.at(p, 0, "the file is empty; cannot tell its format")
    if lines[0].lstrip().startswith("{"):
        return "jsonl"
    if any(tok.startswith(LABEL_PREFIX) for line in lines for tok in line.split()):
        return "fasttext"
    if _XC_HEADER.match(lines[0]) or all(_XC_LINE.match(line) for line in lines):
        return "xc"
    return "text"


def load_corpus(path: PathLike, format: Optional[str] = None, labels_path: Optional[PathLike] = None,
                n_features: Optional[int] = None, n_labels: Optional[int] = None, threads: int = 0):
    """Read a corpus in any supported format: XCData for ``"xc"``, TextData otherwise.

    ``format=None`` detects it (``"text"`` whenever ``labels_path`` is given).
    """
    from xmc.data.xc import read_xc

    if format is None:
        format = "text" if labels_path is not None else detect_format(path)
    if format not in FORMATS:
        raise ValueError(f"unknown corpus format {format!r}; expected one of {', '.join(FORMATS)}")
    if format == "xc":
        return read_xc(path, n_features=n_features, n_labels=n_labels, threads=threads)
    if format == "fasttext":
        return read_fasttext(path)
    if format == "jsonl":
        return read_jsonl(path)
    if labels_path is None:
        raise ValueError(
            f"{os.fspath(path)}: looks like plain text (not XC, fastText or JSON lines); "
            f"pass labels_path with one line of space-separated labels per document")
    return read_text_pair(path, labels_path)
