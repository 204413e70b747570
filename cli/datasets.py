"""``xmc convert-dataset``: a public dataset's original files -> JSON lines xmc reads."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import click

from .output import quiet_option, say

DATA_ENV = "XMC_DATA"


@click.command("convert-dataset")
@click.argument("name", type=click.Choice(["reuters21578", "goemotions", "delicious"]))
@click.option("--src", "src", type=click.Path(exists=True, file_okay=False), default=None,
              help=f"Folder of the dataset's original files [default: ${DATA_ENV}/NAME].")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for train.jsonl, test.jsonl (and dev.jsonl for goemotions).")
@quiet_option
def convert_dataset(name: str, src: Optional[str], out_dir: str) -> None:
    """Convert a public dataset to JSON lines, one file per split.

    \b
    reuters21578: Reuters-21578 SGML (reut2-000.sgm .. reut2-021.sgm), ModApte
                  split, the 90 topics with a training and a test document
    goemotions:   GoEmotions train/dev/test.tsv and emotions.txt (28 labels)
    delicious:    Mulan's Delicious, delicious_{train,test}_xc.txt and the
                  arff header: each document the words of its 500 binary word
                  features (train deep models with --token-encoder feedforward)

    Each line is {"text": ..., "labels": [...]} with label names; train and
    predict read the files with --format jsonl (or detect it).

    \b
    Example:
      xmc convert-dataset reuters21578 --src data/reuters21578 --out runs/reuters
      xmc train --train runs/reuters/train.jsonl --model-dir runs/reuters/model
    """
    from xmc.data import write_jsonl
    from xmc.datasets import REAL_DATASETS

    ds = REAL_DATASETS[name]
    if src is None:
        root = os.environ.get(DATA_ENV)
        if not root:
            raise click.UsageError(f"pass --src with the folder of {name}'s files, or set ${DATA_ENV} to the "
                                   f"folder that holds {ds.folder}/")
        src = str(Path(root) / ds.folder)
        if not Path(src).is_dir():
            raise click.UsageError(f"${DATA_ENV}/{ds.folder} = {src} is not a folder; pass --src")
    start = time.perf_counter()
    splits = ds.load_splits(src)
    out = Path(out_dir)
    for split, data in splits.items():
        path = out / f"{split}.jsonl"
        write_jsonl(path, data)
        n_labels = len({lab for labels in data.labels for lab in labels})
        say(f"wrote {path}: {len(data):,} documents, {n_labels:,} distinct labels")
    click.echo(f"done in {time.perf_counter() - start:.2f} s")
