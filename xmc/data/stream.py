"""Corpora read in chunks of documents, so memory stays bounded whatever the file's size.

:func:`iter_corpus` yields :class:`~xmc.data.XCData` or :class:`~xmc.data.TextData`
chunks of at most ``chunk_docs`` documents, in file order, for every format
:func:`~xmc.data.load_corpus` reads. Concatenated, the chunks equal what
``load_corpus`` returns, and a malformed line raises the same
:class:`~xmc.data.DataFormatError` at the same file line (``tests/test_stream.py``
checks both). ``xmc predict`` runs on it.
"""
from __future__ import annotations

import re
from typing import Iterator, List, Optional, Tuple, Union

from xmc.data.errors import DataFormatError
from xmc.data.limits import line_too_long, resolve_limits
from xmc.data.text import PathLike, TextData, resolve_format, text_records
from xmc.data.xc import XCData, _check_dim, _check_path, _to_xcdata

DEFAULT_CHUNK_DOCS = 50_000
_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n"  # the native reader's blanks: a form feed, say, is content (and an error) there
_MAX_HEADER_N = (2**63 - 1) // 10  # the native reader's bound on each header number
_HEADER = re.compile(rb"^[ \t]*(\d+)[ \t]+(\d+)[ \t]+(\d+)[ \t]*\r?$")


def iter_corpus(path: PathLike, format: Optional[str] = None, labels_path: Optional[PathLike] = None,
                chunk_docs: int = DEFAULT_CHUNK_DOCS, n_features: Optional[int] = None,
                n_labels: Optional[int] = None, threads: int = 0, max_line_bytes: Optional[int] = None,
                max_labels_per_doc: Optional[int] = None) -> Iterator[Union[XCData, TextData]]:
    """Chunks of at most ``chunk_docs`` documents; arguments as for :func:`~xmc.data.load_corpus`.

    An XC file without a header needs ``n_features`` (a model's), since no chunk can tell
    the feature count of the whole file; without ``n_labels`` too, each chunk's label matrix
    is as wide as its own largest label id + 1 (``Pipeline.labels`` pads or cuts it).
    """
    if chunk_docs < 1:
        raise ValueError(f"chunk_docs must be >= 1, got {chunk_docs}")
    format = resolve_format(path, format, labels_path, max_line_bytes, max_labels_per_doc)
    if format == "xc":
        yield from _xc_chunks(path, chunk_docs, n_features, n_labels, threads, max_line_bytes, max_labels_per_doc)
        return
    yield from _text_chunks(text_records(path, format, labels_path, max_line_bytes, max_labels_per_doc),
                            chunk_docs)


def _text_chunks(records: Iterator[Tuple[str, List[str]]], chunk_docs: int) -> Iterator[TextData]:
    chunk = TextData([], [])
    for text, labels in records:
        chunk.texts.append(text)
        chunk.labels.append(labels)
        if len(chunk.texts) == chunk_docs:
            yield chunk
            chunk = TextData([], [])
    if chunk.texts:
        yield chunk


def _xc_chunks(path: PathLike, chunk_docs: int, n_features: Optional[int], n_labels: Optional[int],
               threads: int, max_line_bytes: Optional[int],
               max_labels_per_doc: Optional[int]) -> Iterator[XCData]:
    from xmc import _core

    p = _check_path(path)
    max_line, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    D, L = _check_dim("n_features", n_features), _check_dim("n_labels", n_labels)

    def parse(block: bytes, first_line: int, header_ok: bool = False) -> XCData:
        # Each block is parsed as a whole file of its own; its line numbers are moved to the file's.
        try:
            result = _core.parse_xc_bytes(block, p, D, L, int(threads), 1 << 20, max_line, max_labels)
        except DataFormatError as e:
            if not e.line:
                raise
            detail = str(e)[len(f"{p}:{e.line}: "):]
            raise DataFormatError.at(p, e.line + first_line - 1, detail) from None
        if result[2] and not header_ok:  # a line only a header can look like, past the file's first line
            raise DataFormatError.at(p, first_line, "expected a document 'l1,l2 f:v ...', found a second "
                                                    "header-like line of integers")
        return _to_xcdata(result)

    with open(p, "rb") as f:
        lines = _read_lines(f, p, chunk_docs, max_line, 1)
        if not lines:
            raise DataFormatError.at(p, 0, "the file is empty; expected an optional header 'N D L' and "
                                           "one document per line")
        lines[0] = lines[0][len(_BOM):] if lines[0].startswith(_BOM) else lines[0]
        header = _HEADER.match(lines[0].rstrip(b"\n"))
        if header is not None:
            # The header goes through the native parser once (its D/L checks and messages), with N
            # rewritten to 0 documents; the chunks are then parsed without it against its D and L.
            N = int(header.group(1))
            if N > _MAX_HEADER_N:
                raise DataFormatError.at(p, 1, f"expected a header 'N D L' of three non-negative integers, "
                                               f"found N={header.group(1)[:20].decode()}... (too large)")
            parse(b"0 %s %s\n" % (header.group(2), header.group(3)), 1, header_ok=True)
            D = int(header.group(2)) if D < 0 else D
            L = int(header.group(3)) if L < 0 else L
            # Top the first chunk up to chunk_docs documents: every chunk but the last is full.
            lines, next_line = lines[1:] + _read_lines(f, p, 1, max_line, len(lines) + 1), 2
        elif D < 0:
            if lines[0].strip(_BLANK):  # a malformed header fails here with the reader's own message
                parse(lines[0], 1, header_ok=True)
            raise ValueError(f"{p}: an XC file without a header 'N D L' can be read in chunks only with "
                             f"n_features given (the model's)")
        else:
            N, next_line = None, 1
        n_docs, content, stray_line = 0, header is not None, None
        while True:
            if not lines:
                lines = _read_lines(f, p, chunk_docs, max_line, next_line)
                if not lines:
                    break
            whitespace_only = all(not ln.strip(_BLANK) for ln in lines)
            if stray_line and not whitespace_only:
                raise DataFormatError.at(p, stray_line, _STRAY_CR)  # the file has content: the earlier line fails
            if next_line > 1 and lines[0].startswith(_BOM):
                raise DataFormatError.at(p, next_line, "expected a document, found a byte-order mark "
                                                       "(U+FEFF) inside the file")
            if next_line > 1 and not whitespace_only and _header_like(lines[0]):
                # The native parser would take a block's first line for its header; in the file it is an error.
                raise DataFormatError.at(p, next_line, "expected a document 'l1,l2 f:v ...', found a "
                                                       "header-like line of integers")
            if whitespace_only:
                # The native parser would call this block an empty file. Its lines are empty documents,
                # except one holding a stray carriage return: an error, once the file proves not empty.
                stray = next((next_line + k for k, ln in enumerate(lines) if not _empty_document(ln)), None)
                stray_line = stray_line or stray
                if content and stray_line:
                    raise DataFormatError.at(p, stray_line, _STRAY_CR)
                yield _blank_docs(len(lines), D, max(L, 0))
            else:
                content = True
                yield parse(b"".join(lines), next_line)
            n_docs += len(lines)
            next_line += len(lines)
            lines = []
    if not content:
        raise DataFormatError.at(p, 0, "the file is empty; expected an optional header 'N D L' and "
                                       "one document per line")
    if N is not None and N != n_docs:
        raise DataFormatError.at(p, 1, f"the header promises {N} documents, found {n_docs} document lines")


_STRAY_CR = "expected a document or an empty line, found a carriage return inside the line"


def _header_like(line: bytes) -> bool:
    """What the native reader takes for a header: two or more blank-separated tokens, none with a ':'."""
    content = line[:-1] if line.endswith(b"\n") else line
    content = content[:-1] if content.endswith(b"\r") else content
    tokens = [t for t in re.split(rb"[ \t]+", content) if t]
    return len(tokens) >= 2 and not any(b":" in t for t in tokens)


def _empty_document(line: bytes) -> bool:
    """The native reader's empty document: spaces and tabs only, before one optional CR and the LF."""
    content = line[:-1] if line.endswith(b"\n") else line
    content = content[:-1] if content.endswith(b"\r") else content
    return not content.strip(b" \t")


def _read_lines(f, path: str, n: int, max_line: int, first_line: int) -> List[bytes]:
    """Up to ``n`` raw lines (line endings kept); a line longer than ``max_line`` bytes is an error."""
    lines = []
    for i in range(n):
        raw = f.readline(max_line + 2)  # + "\r\n": a line of exactly max_line bytes still fits
        if not raw:
            break
        content = raw[:-1] if raw.endswith(b"\n") else raw
        if len(content[:-1] if content.endswith(b"\r") else content) > max_line:
            raise DataFormatError.at(path, first_line + i, line_too_long(max_line))
        lines.append(raw if raw.endswith(b"\n") else raw + b"\n")
    return lines


def _blank_docs(n: int, D: int, L: int) -> XCData:
    # The native parser calls a block of blank lines an empty file; in a file they are empty documents.
    import numpy as np
    import scipy.sparse as sp

    empty = sp.csr_matrix((n, D), dtype=np.float32)
    return XCData(X=empty, Y=sp.csr_matrix((n, L), dtype=np.float32), n_features=D, n_labels=L)
