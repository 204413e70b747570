"""Corpora read in chunks of documents, so memory stays bounded whatever the file's size.

:func:`iter_corpus` yields :class:`~xmc.data.XCData` or :class:`~xmc.data.TextData`
chunks of at most ``chunk_docs`` documents, in file order, for every format
:func:`~xmc.data.load_corpus` reads. Concatenated, the chunks equal what
``load_corpus`` returns, and a malformed line raises the same
:class:`~xmc.data.DataFormatError` at the same file line (``tests/test_stream.py``
checks both). ``xmc predict`` runs on it.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple, Union

from xmc.data.corpus import PathLike, TextData, resolve_format, text_records
from xmc.data.limits import resolve_limits
from xmc.data.compressed import is_gzip
from xmc.data.xc import XCData, _check_dim, _check_path, _to_xcdata, read_xc

DEFAULT_CHUNK_DOCS = 50_000


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


def _row_chunks(data: XCData, chunk_docs: int) -> Iterator[XCData]:
    for start in range(0, data.n_docs, chunk_docs):
        rows = slice(start, start + chunk_docs)
        yield XCData(data.X[rows], data.Y[rows], data.n_features, data.n_labels)


def _xc_chunks(path: PathLike, chunk_docs: int, n_features: Optional[int], n_labels: Optional[int],
               threads: int, max_line_bytes: Optional[int],
               max_labels_per_doc: Optional[int]) -> Iterator[XCData]:
    from xmc import _core

    p = _check_path(path)
    if is_gzip(p):  # no seeking in a gzip stream: it is decompressed and parsed whole, then cut in chunks
        yield from _row_chunks(read_xc(p, n_features, n_labels, threads, max_line_bytes, max_labels_per_doc),
                               chunk_docs)
        return
    max_line, max_labels = resolve_limits(max_line_bytes, max_labels_per_doc)
    D, L = _check_dim("n_features", n_features), _check_dim("n_labels", n_labels)
    # The native reader applies read_xc's rules chunk by chunk (header, limits, error lines),
    # so a malformed header or an empty file fails here with the whole-file message.
    reader = _core.XcChunkReader(p, D, L, int(threads), max_line, max_labels)
    if D < 0 and not reader.had_header:
        raise ValueError(f"{p}: an XC file without a header 'N D L' can be read in chunks only with "
                         f"n_features given (the model's)")
    while True:
        chunk = _to_xcdata(reader.next(chunk_docs))
        if chunk.X.shape[0] == 0:
            return
        yield chunk
