"""Readers for public multi-label datasets, in their original distribution
layout: Reuters-21578 (ModApte split, 90 topics) and GoEmotions (raw text), and
Delicious (Mulan's 500 binary word features, 983 tags).

Each reader takes the dataset's folder and a split name and returns a
:class:`~xmc.data.corpus.TextData` whose labels are the label names. Delicious
has no text: each document becomes the words of its present features, so the
text models read it unchanged (its words carry no order; pair it with an
order-free encoder, ``DeepParams.token_encoder = "feedforward"``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from xmc.data.corpus import TextData, iter_lines
from xmc.data.errors import DataFormatError
from xmc.data.xc import read_xc
from xmc.text.tokens import TextParams, Tokenizer

PathLike = Union[str, "os.PathLike[str]"]

# ---------------------------------------------------------------- Reuters-21578

REUTERS_FILES = tuple(f"reut2-{i:03d}.sgm" for i in range(22))
REUTERS_SPLITS = ("train", "test")
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_D = re.compile(r"<D>(.*?)</D>", re.S)
_ENTITY = re.compile(r"&(lt|gt|amp|quot|apos);|&#(\d+);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _unescape(text: str) -> str:
    """SGML entities to characters. The collection encodes wire-service control
    codes as &#2; (start of text), &#3; (end), &#5;, &#22;, &#127; ...: dropped,
    as they are not text; tab and newline are kept."""

    def repl(m: "re.Match[str]") -> str:
        if m.group(1):
            return _NAMED[m.group(1)]
        code = int(m.group(2))
        return chr(code) if code in (9, 10) or 32 <= code < 127 or 160 <= code <= 0x10FFFF else ""

    return _ENTITY.sub(repl, text)


@dataclass
class _Article:
    newid: int
    lewissplit: str
    has_topics: bool
    topics: List[str]
    text: str


def _between(s: str, open_tag: str, close_tag: str) -> Optional[str]:
    """The text between the first ``open_tag`` (a prefix up to its ``>``) and the next ``close_tag``."""
    i = s.find(open_tag)
    if i < 0:
        return None
    i = s.find(">", i) + 1
    j = s.find(close_tag, i)
    return s[i:j] if i > 0 and j >= 0 else None


def _parse_sgm(path: Path) -> List[_Article]:
    # The collection is ASCII but for one byte in reut2-017.sgm that no copy
    # keeps intact (see the data's SOURCE.md); "replace" reads it as U+FFFD
    # whether a copy holds the original byte or its UTF-8 replacement.
    content = path.read_bytes().decode("utf-8", errors="replace")
    out = []
    # Plain string searches: the regex equivalents take several times as long on the 27 MB.
    chunks = content.split("</REUTERS>")
    line = 1
    for chunk in chunks[:-1]:
        start = chunk.find("<REUTERS")
        end = chunk.find(">", start)
        attrs = dict(_ATTR.findall(chunk[start:end])) if start >= 0 else {}
        if start < 0 or end < 0 or any(a not in attrs for a in ("LEWISSPLIT", "TOPICS")) \
                or not attrs.get("NEWID", "").isdigit():
            where = line + chunk.count("\n", 0, max(start, 0))
            raise DataFormatError.at(path, where, f"expected a <REUTERS> tag with NEWID (a number), LEWISSPLIT "
                                                  f"and TOPICS, found {chunk[max(start, 0):][:80]!r}")
        line += chunk.count("\n")
        topics: List[str] = []
        for d in _D.findall(_between(chunk, "<TOPICS>", "</TOPICS>") or ""):
            d = _unescape(d).strip()
            if d and d not in topics:  # a few articles list a topic twice
                topics.append(d)
        inner = _between(chunk, "<TEXT", "</TEXT>") or ""
        title, body = _between(inner, "<TITLE>", "</TITLE>"), _between(inner, "<BODY>", "</BODY>")
        # TYPE="UNPROC" articles have no TITLE/BODY markup: their whole text is kept.
        parts = [inner] if title is None and body is None else [p for p in (title, body) if p is not None]
        text = "\n".join(t for t in (_unescape(p).strip() for p in parts) if t)
        out.append(_Article(int(attrs["NEWID"]), attrs["LEWISSPLIT"], attrs["TOPICS"] == "YES", topics, text))
    if not out:
        raise DataFormatError.at(path, 0, "expected <REUTERS ...> articles, found none")
    return out


def load_reuters21578_splits(root: PathLike) -> Dict[str, TextData]:
    """The ModApte split of Reuters-21578 restricted to the 90 topics with at
    least one training and one test document ("R90"): ``{"train", "test"}``.

    Train: ``LEWISSPLIT="TRAIN"`` and ``TOPICS="YES"``; test: ``LEWISSPLIT="TEST"``
    and ``TOPICS="YES"``; documents with none of the 90 topics are dropped
    (7,770 training and 3,019 test documents remain, as other parsers of these
    SGML files find; NLTK's separately prepared "ApteMod" copy has 7,769 training
    documents, a difference not traced to any rule). Text: title and body
    separated by a newline (the whole text for articles without that markup),
    entities decoded. Labels: the topic names in the order the article lists
    them, once each. Documents are in NEWID order.
    """
    root = Path(root)
    articles: List[_Article] = []
    for name in REUTERS_FILES:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; expected the 22 files reut2-000.sgm .. reut2-021.sgm "
                                    f"of Reuters-21578 Distribution 1.0 in {root}")
        articles.extend(_parse_sgm(path))
    articles.sort(key=lambda a: a.newid)
    split_of = {"TRAIN": "train", "TEST": "test"}
    chosen: Dict[str, List[_Article]] = {"train": [], "test": []}
    for a in articles:
        if a.has_topics and a.lewissplit in split_of:
            chosen[split_of[a.lewissplit]].append(a)
    seen = {s: {t for a in docs for t in a.topics} for s, docs in chosen.items()}
    keep = seen["train"] & seen["test"]
    out = {}
    for split, docs in chosen.items():
        data = TextData([], [])
        for a in docs:
            labels = [t for t in a.topics if t in keep]
            if labels:
                data.texts.append(a.text)
                data.labels.append(labels)
        out[split] = data
    return out


def load_reuters21578(root: PathLike, split: str) -> TextData:
    """One split (``"train"`` or ``"test"``) of :func:`load_reuters21578_splits`."""
    _check_split(split, REUTERS_SPLITS, "reuters21578")
    return load_reuters21578_splits(root)[split]


# ---------------------------------------------------------------- GoEmotions

GOEMOTIONS_SPLITS = ("train", "dev", "test")
GOEMOTIONS_LABELS_FILE = "emotions.txt"


def goemotions_label_names(root: PathLike) -> List[str]:
    """The 28 label names, by id (``emotions.txt``, one per line)."""
    path = Path(root) / GOEMOTIONS_LABELS_FILE
    names = [line.strip() for _, line in iter_lines(path)]
    while names and not names[-1]:
        names.pop()
    if not names or not all(names) or len(set(names)) != len(names):
        raise DataFormatError.at(path, 0, f"expected one distinct label name per line, found {names[:5]}")
    return names


def _unquote(text: str) -> str:
    # The TSV was written CSV-style: a text holding a double quote is wrapped in
    # quotes with its own quotes doubled. Every such text in the three splits
    # follows that rule, so undoing it is safe; anything else is left as is.
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return text


def load_goemotions(root: PathLike, split: str) -> TextData:
    """GoEmotions (28 labels, the official split): ``split`` is train, dev or
    test. Rows are ``text<TAB>label ids<TAB>comment id``; labels are returned
    as names (from ``emotions.txt``) in the order the row lists them."""
    _check_split(split, GOEMOTIONS_SPLITS, "goemotions")
    root = Path(root)
    names = goemotions_label_names(root)
    path = root / f"{split}.tsv"
    data = TextData([], [])
    for lineno, line in iter_lines(path):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataFormatError.at(path, lineno, f"expected 3 tab-separated fields (text, label ids, "
                                                   f"comment id), found {len(fields)}")
        labels: List[str] = []
        for tok in fields[1].split(","):
            if not tok.isdigit() or int(tok) >= len(names):
                raise DataFormatError.at(path, lineno, f"expected label ids in 0..{len(names) - 1} separated by "
                                                       f"commas, found {fields[1][:40]!r}")
            if names[int(tok)] not in labels:
                labels.append(names[int(tok)])
        data.texts.append(_unquote(fields[0]))
        data.labels.append(labels)
    return data


def load_goemotions_splits(root: PathLike) -> Dict[str, TextData]:
    """``{"train", "dev", "test"}`` of :func:`load_goemotions`."""
    return {s: load_goemotions(root, s) for s in GOEMOTIONS_SPLITS}


# ---------------------------------------------------------------- Delicious

DELICIOUS_SPLITS = ("train", "test")
DELICIOUS_ARFF = "delicious-train.arff"  # its header names the 500 word features, then the 983 tags
_ALNUM_RUN = re.compile(r"[^\W_]+")


def delicious_attribute_names(root: PathLike) -> Tuple[List[str], List[str]]:
    """(feature words, tag names) from the ARFF header, in attribute order: the XC files' feature and label
    ids. A word is written as one token the default tokenizer keeps whole: its inner underscores become
    apostrophes (``comment_form`` -> ``comment'form``; dropping them would merge ``form_id`` with
    ``formid``), outer ones go (``_qacct`` -> ``qacct``). Tags lose Mulan's ``TAG_`` prefix."""
    path = Path(root) / DELICIOUS_ARFF
    names = []
    for number, line in iter_lines(path):
        if line[:10].lower() == "@attribute":
            fields = line.split()
            if len(fields) < 3:
                raise DataFormatError(f"{path}:{number}: expected '@attribute NAME {{0,1}}', found {line[:80]!r}")
            names.append(fields[1])
        elif line.strip().lower() == "@data":
            break
    words = [n for n in names if not n.startswith("TAG_")]
    tags = [n[len("TAG_"):] for n in names if n.startswith("TAG_")]
    tokens = ["'".join(_ALNUM_RUN.findall(w)) for w in words]
    as_read = [Tokenizer(TextParams()).tokenize(t) for t in tokens]  # what the text models will see
    if names[:len(words)] != words or any(len(t) != 1 for t in as_read) or len({t[0] for t in as_read}) != len(tokens):
        raise DataFormatError(f"{path}: expected word attributes, each a distinct word, then TAG_ attributes; "
                              f"found {len(words)} words ({len(set(map(tuple, as_read)))} distinct as tokens) and {len(tags)} tags")
    return tokens, tags


def load_delicious(root: PathLike, split: str) -> TextData:
    """One split (``train``: 12,920 documents, ``test``: 3,185) of ``delicious_<split>_xc.txt``, each
    document the words of its present features (all values are 1) and labels the tag names."""
    _check_split(split, DELICIOUS_SPLITS, "Delicious")
    return _load_delicious(root, split, *delicious_attribute_names(root))


def _load_delicious(root: PathLike, split: str, words: List[str], tags: List[str]) -> TextData:
    data = read_xc(Path(root) / f"delicious_{split}_xc.txt", n_features=len(words), n_labels=len(tags))
    X, Y = data.X, data.Y
    texts = [" ".join(words[j] for j in X.indices[X.indptr[i]:X.indptr[i + 1]]) for i in range(X.shape[0])]
    labels = [[tags[j] for j in Y.indices[Y.indptr[i]:Y.indptr[i + 1]]] for i in range(Y.shape[0])]
    return TextData(texts, labels)


def load_delicious_splits(root: PathLike) -> Dict[str, TextData]:
    """``{"train", "test"}`` of :func:`load_delicious`, the ARFF header read once for both."""
    names = delicious_attribute_names(root)
    return {s: _load_delicious(root, s, *names) for s in DELICIOUS_SPLITS}


# ---------------------------------------------------------------- registry

def _check_split(split: str, splits: Tuple[str, ...], name: str) -> None:
    if split not in splits:
        raise ValueError(f"{name} has splits {', '.join(splits)}; got {split!r}")


@dataclass(frozen=True)
class RealDataset:
    """A dataset xmc can read from its original files: ``folder`` is its usual
    folder name under a data root ($XMC_DATA), ``load(root, split)`` reads one
    split and ``load_splits(root)`` all of them (Reuters parses its files once)."""

    name: str
    folder: str
    splits: Tuple[str, ...]
    load: Callable[[PathLike, str], TextData]
    load_splits: Callable[[PathLike], Dict[str, TextData]]
    description: str


REAL_DATASETS: Dict[str, RealDataset] = {
    "reuters21578": RealDataset("reuters21578", "reuters21578", REUTERS_SPLITS, load_reuters21578,
                                load_reuters21578_splits,
                                "Reuters-21578 newswire, ModApte split, 90 topics (SGML files reut2-*.sgm)"),
    "goemotions": RealDataset("goemotions", "goemotions", GOEMOTIONS_SPLITS, load_goemotions,
                              load_goemotions_splits,
                              "GoEmotions Reddit comments, 28 emotions (train/dev/test.tsv, emotions.txt)"),
    "delicious": RealDataset("delicious", "delicious", DELICIOUS_SPLITS, load_delicious, load_delicious_splits,
                             "Delicious bookmarks, 500 binary word features as words, 983 tags "
                             "(delicious_{train,test}_xc.txt, delicious-train.arff header)"),
}
