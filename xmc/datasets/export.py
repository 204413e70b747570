"""Write a synthetic corpus as files, in any input format xmc reads."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence

from xmc.data import write_xc
from xmc.datasets.synthetic import SyntheticParams, make_corpus, make_text_corpus
from xmc.utils.modeldir import atomic_write_bytes, save_json

EXPORT_FORMATS = ("xc", "fasttext", "jsonl")


def _fasttext_lines(texts: Sequence[str], labels: Sequence[Sequence[str]]) -> bytes:
    return "".join(" ".join([*(f"__label__{l}" for l in ls), t]) + "\n" for t, ls in zip(texts, labels)).encode()


def _jsonl_lines(texts: Sequence[str], labels: Sequence[Sequence[str]]) -> bytes:
    return "".join(json.dumps({"text": t, "labels": list(ls)}) + "\n" for t, ls in zip(texts, labels)).encode()


def write_corpus(params: SyntheticParams, out_dir: Path, format: str = "xc") -> List[Path]:
    """Generate the corpus of ``params`` and write train.txt / test.txt (and params.json) to ``out_dir``."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = out_dir / "train.txt", out_dir / "test.txt"
    if format == "xc":
        c = make_corpus(params)
        write_xc(train, c.X_train, c.Y_train)
        write_xc(test, c.X_test, c.Y_test)
    else:
        c = make_text_corpus(params)
        lines = _fasttext_lines if format == "fasttext" else _jsonl_lines
        atomic_write_bytes(train, lines(c.train_texts, c.train_labels))
        atomic_write_bytes(test, lines(c.test_texts, c.test_labels))
    meta = out_dir / "params.json"
    save_json(meta, {"generator": "xmc.datasets.synthetic", "format": format, **params.to_dict()})
    return [train, test, meta]
