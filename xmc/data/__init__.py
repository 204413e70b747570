"""xmc.data: reading and writing corpora, label vocabularies, TF-IDF features.

- :func:`read_xc` / :func:`write_xc`: Extreme Classification Repository sparse
  files, parsed in parallel by the native core into float32 CSR matrices.
- :func:`read_fasttext`, :func:`read_text_pair`, :func:`read_jsonl`: raw-text
  corpora as :class:`TextData` (:func:`write_jsonl` writes one back);
  :func:`detect_format` and :func:`load_corpus`.
- :class:`LabelVocab`: label strings <-> ids; :class:`TfidfFeaturizer`.

Malformed files raise :class:`DataFormatError` (a ValueError) naming the file,
the line, what was expected and what was found; input that is read but partly
skipped is counted in one :class:`DataWarning` per kind. Line length and labels
per document are limited (:mod:`xmc.data.limits`). docs/data-formats.md's "Malformed
input" table lists every case.
"""
from xmc.data.corpus import TextData, detect_format, load_corpus, read_fasttext, read_jsonl, read_text_pair, write_jsonl
from xmc.data.errors import DataFormatError, DataWarning, UnknownLabelError
from xmc.data.tfidf import TfidfFeaturizer, TfidfParams
from xmc.data.vocab import LabelVocab
from xmc.data.xc import XCData, parse_xc_bytes, read_xc, write_xc

__all__ = [
    "DataFormatError", "DataWarning", "UnknownLabelError", "XCData", "read_xc", "write_xc", "parse_xc_bytes",
    "TextData", "read_fasttext", "read_text_pair", "read_jsonl", "write_jsonl", "detect_format", "load_corpus",
    "LabelVocab", "TfidfFeaturizer", "TfidfParams",
]
