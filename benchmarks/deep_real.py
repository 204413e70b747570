"""Deep models against the linear PLT on real datasets, same split, same machine, one run.

    python benchmarks/deep_real.py --dataset reuters21578 --data ../shared/data
    python benchmarks/deep_real.py --dataset goemotions --models linear,attentionxml --epochs 5
    python benchmarks/deep_real.py --dataset delicious --models linear,ldgn,ldgn:none --jobs 2 --threads 1
    python benchmarks/deep_real.py --dataset goemotions --models lightattention:leaves-2,lightattention:leaves-4 \
        --update --jobs 2 --threads 1 --epochs 6 --lr 2e-3 --embedding random
    python benchmarks/deep_real.py --dataset reuters21578 --update --jobs 2 --threads 1 \
        --models seq2seq-mdc,seq2seq-mdc:words,lwpt,lwpt:no-pretraining,laco,laco:plcp,laco:clcp

A model is a name of ``xmc train --model`` with an optional ``:variant`` from VARIANTS, the
ablations of its paper (``seq2seq-mdc:words``: attention over the words alone; ``lwpt:no-pretraining``;
``laco:plcp`` ...).

Splits: Reuters-21578 ModApte (90 topics) and Delicious (Mulan's split, 983
tags): 10% of the training documents (seeded) are held out for early stopping
and thresholds, every model trains on the other 90%; GoEmotions: train / dev /
test. Delicious has no text, only 500 binary word features: each document is
the words of its present features (``xmc.datasets.real.load_delicious``), the
linear PLT weighs them by TF-IDF, and LDGN reads them with the feed-forward
token encoder (DATASET_OPTIONS). The deep models start from the word vectors
``xmc train`` gives them by default, skip-gram trained on the training texts
(``--embedding random`` for random ones; rows of runs before 2026-12-03 used
random vectors). Each model runs in its own process (peak memory is its own).
Figures on the test split:

- P@1/3/5, nDCG@3/5, PSP@1/3/5 (propensities from the training labels, A=0.55, B=1.5);
- micro/macro-F1, Hamming loss and one-error of a label set per document: the
  top label plus every other top-10 label whose score reaches a threshold t,
  with t chosen on the validation split to maximise micro-F1, the same rule
  for every model that scores labels; Seq2Seq-MDC decodes its sets
  (``predict_sets``), and those are its sets here (t reads "decoded").

Writes ``benchmarks/results/deep_real_<dataset>.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from common import fit_linear_plt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)
DEEP = ("attentionxml", "lightattention")
# The papers' ablations: params changes on top of a model's defaults.
VARIANTS = {
    "seq2seq-mdc": {"hybrid": {}, "additive": {"decoder_attention": "additive"},
                    "units": {"decoder_attention": "units"}, "words": {"decoder_attention": "words"},
                    "none": {"decoder_attention": "none"}},
    "lwpt": {"lw": {}, "no-pretraining": {"pretrain_steps": 0}, "hlw": {"encoder": "hlw"},
             "hlw-no-pretraining": {"encoder": "hlw", "pretrain_steps": 0}},
    "laco": {"none": {}, "plcp": {"aux_tasks": "plcp"}, "clcp": {"aux_tasks": "clcp"},
             "both": {"aux_tasks": "both"}},
    # LightAttention's clusters are the label tree's leaves (at most tree.max_leaf_size labels);
    # smaller leaves give its generator more clusters to tell apart on small label sets
    "lightattention": {f"leaves-{size}": {"tree": {"max_leaf_size": size}} for size in (2, 4, 8)},
    "ldgn": {"both": {}, "static": {"graph": "static"}, "dynamic": {"graph": "dynamic"}, "none": {"graph": "none"},
             "candidates": {},
             # the output layer (LDGNParams.output): "mixed" scores H4 with one map shared by all labels
             # (with no dynamic graph there is no H4 and the layer is the per-label one)
             **{f"{graph}-mixed": {"graph": graph, "output": "mixed"} for graph in ("both", "dynamic")}},
}
# Variants that score only the labels the linear PLT proposes per document (xmc's LDGN over candidates):
# the linear model is trained first, in the same process, and its time counts in the variant's.
OVER_LINEAR_CANDIDATES = ("ldgn:candidates",)
# Params a dataset sets: Delicious' words are a bag with no order to read (LDGN reads token_encoder;
# the other models keep their own encoders).
DATASET_OPTIONS = {"delicious": {"token_encoder": "feedforward"}}
DECODERS = ("seq2seq-mdc",)  # models whose label sets are decoded, not thresholded


def deep_default(name: str):
    """A default of the deep models' params, from the class that holds it (torch is imported only for LW-PT's)."""
    from xmc.models.params import DeepParams
    from xmc.training.params import TrainingParams

    for params in (DeepParams(), TrainingParams()):
        if hasattr(params, name):
            return getattr(params, name)
    from xmc.models.lwpt import LWPTParams

    return getattr(LWPTParams(), name)


def model_spec(name: str) -> Tuple[str, Dict]:
    """("seq2seq-mdc", {"decoder_attention": "words"}) for "seq2seq-mdc:words"."""
    kind, _, variant = name.partition(":")
    if not variant:
        return kind, {}
    if variant not in VARIANTS.get(kind, {}):
        raise SystemExit(f"unknown variant {name!r}; known: "
                         f"{[f'{k}:{v}' for k, vs in VARIANTS.items() for v in vs]}")
    return kind, VARIANTS[kind][variant]


def load_splits(dataset: str, data_root: Path) -> Tuple[object, object, object]:
    """(train, valid, test) TextData."""
    from xmc.datasets.real import REAL_DATASETS
    from xmc.models.base import split_validation

    info = REAL_DATASETS[dataset]
    splits = info.load_splits(data_root / info.folder)
    if "dev" in splits:
        return splits["train"], splits["dev"], splits["test"]
    full = splits["train"]
    train_rows, valid_rows = split_validation(len(full), 0.1, seed=0)
    return full.subset(train_rows), full.subset(valid_rows), splits["test"]


def label_sets(ids: np.ndarray, scores: np.ndarray, t: float, n_labels: int):
    """Top label always, then every other ranked label with score >= t."""
    from xmc.metrics.classification import binarize_topk

    keep = ids.copy()
    drop = scores < t
    drop[:, 0] = False
    keep[drop] = -1
    return binarize_topk(keep, n_labels)


def set_metrics(Y, ids, scores, t: float) -> Dict[str, float]:
    return decoded_set_metrics(Y, label_sets(ids, scores, t, Y.shape[1]), ids)


def decoded_set_metrics(Y, sets, ids) -> Dict[str, float]:
    """Micro/macro-F1 and Hamming loss of the label sets, one-error of the ranking's top label."""
    from xmc.metrics.classification import f1_scores, hamming_loss

    micro, macro = f1_scores(Y, sets)
    top1 = ids[:, 0]
    hit = np.asarray(Y[np.arange(Y.shape[0]), np.maximum(top1, 0)]).ravel() > 0
    return {"micro-F1": micro, "macro-F1": macro, "hamming": hamming_loss(Y, sets),
            "one-error": float(np.mean(~hit | (top1 < 0)))}


def run_one(model_name: str, dataset: str, data_root: Path, epochs: int, threads: int, seed: int,
            lr: float, deep_options: Dict) -> Dict:
    from xmc.metrics import evaluate, inv_propensity
    from xmc.utils.resources import peak_rss_bytes

    train, valid, test = load_splits(dataset, data_root)
    t0 = time.perf_counter()
    if model_name == "linear":
        model = fit_linear_plt(train, threads, seed)
        predict = lambda corpus: model.predict_topk(corpus, k=10, threads=threads)
    else:
        import dataclasses

        from xmc.registry import get

        kind, variant = model_spec(model_name)
        entry = get(kind)
        defaults = entry.params_class()()
        # A dataset's options reach the models that have the field (LDGN's token_encoder); the rest keep theirs.
        dataset_options = {k: v for k, v in DATASET_OPTIONS.get(dataset, {}).items() if k in defaults.to_dict()}
        options = {**dataset_options, **deep_options, **variant}
        # The model's own word vectors from the source `--embedding` names, with the run's seed and worker count.
        options["embedding"] = dataclasses.replace(defaults.embedding, source=options.pop("embedding"),
                                                   seed=seed, threads=threads)
        if "tree" in options:  # a variant's tree fields over the model's own tree
            options["tree"] = dataclasses.replace(defaults.tree, **options["tree"])
        params = entry.params_class().from_flat(dict(epochs=epochs, threads=threads, seed=seed, lr=lr, **options))
        over = {"candidates": fit_linear_plt(train, threads, seed)} if model_name in OVER_LINEAR_CANDIDATES else {}
        model = entry.model_class()(params, **over).fit(train, valid=valid, progress=False, log=print)
        predict = lambda corpus: model.predict_topk(corpus, k=10, threads=threads)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    ids, scores = predict(test)
    predict_seconds = time.perf_counter() - t1
    Y_test = model.labels(test)
    metrics = evaluate(Y_test, ids, ks=(1, 3, 5), inv_prop=inv_propensity(model.labels(train)))
    if model_spec(model_name)[0] in DECODERS:
        best_t = "decoded"
        metrics.update(decoded_set_metrics(Y_test, model.predict_sets(test, threads=threads), ids))
    else:
        valid_ids, valid_scores = predict(valid)
        Y_valid = model.labels(valid)
        best_t = float(max(THRESHOLDS, key=lambda t: set_metrics(Y_valid, valid_ids, valid_scores, t)["micro-F1"]))
        metrics.update(set_metrics(Y_test, ids, scores, best_t))
    return {"model": model_name, "dataset": dataset, "train_seconds": train_seconds,
            "predict_docs_per_s": len(test.texts) / predict_seconds, "threshold": best_t,
            "peak_rss_bytes": peak_rss_bytes(), "n_train": len(train.texts), "n_test": len(test.texts),
            "metrics": metrics}


COLUMNS = ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5", "micro-F1", "macro-F1",
           "hamming", "one-error"]


def write_table(dataset: str, results: List[Dict], extra: str) -> str:
    settings = {r.get("setting", extra) for r in results}
    if len(settings) > 1:  # rows merged from runs with different settings (--update)
        extra = "Rows from separate runs on this machine:\n\n" + "\n".join(
            f"- {r['model']}: {r.get('setting', extra)}" for r in results)
    lines = [f"# Deep models vs linear PLT on {dataset} (test split)", "", extra, "",
             "| model | " + " | ".join(COLUMNS) + " | train min | docs/s | peak MiB | t |",
             "|---" * (len(COLUMNS) + 5) + "|"]
    for r in results:
        m = r["metrics"]
        cells = [f"{m[c] * 100:.2f}" if c != "hamming" else f"{m[c] * 100:.3f}" for c in COLUMNS]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {r['train_seconds'] / 60:.1f} | "
                     f"{r['predict_docs_per_s']:,.0f} | {r['peak_rss_bytes'] / 2**20:,.0f} | {_threshold(r)} |")
    lines += ["", "All figures are percentages except time, throughput, memory and the threshold t. "
              "Hamming loss and one-error: lower is better."]
    return "\n".join(lines) + "\n"


def _threshold(result: Dict) -> str:
    t = result["threshold"]
    return t if isinstance(t, str) else f"{t:.2f}"


def run_child(name: str, args: argparse.Namespace) -> Dict:
    """Train and evaluate one model in its own process, its log lines streamed with its name in front."""
    cmd = [sys.executable, __file__, "--dataset", args.dataset, "--data", str(args.data),
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
           "--lr", str(args.lr), "--swa-start", str(args.swa_start), "--dropout", str(args.dropout),
           "--pretrain-steps", str(args.pretrain_steps), "--embedding", args.embedding,
           "--single", name]
    print(f"== {name}", flush=True)
    found = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        for line in proc.stdout:  # streamed: per-epoch lines show up while a model trains
            if line.startswith("RESULT "):
                found.append(json.loads(line[7:]))
            else:
                print(f"  [{name}] " + line.rstrip(), flush=True)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    print(f"[{name}] " + json.dumps(found[0]["metrics"]), flush=True)
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["reuters21578", "goemotions", "delicious"], required=True)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("XMC_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--models", default="linear,attentionxml,lightattention")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1,
                    help="models trained at once, each in its own process with --threads threads")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the deep models")
    ap.add_argument("--swa-start", type=int, default=deep_default("swa_start"),
                    help="epoch from which the weight average is validated too (0: off)")
    ap.add_argument("--dropout", type=float, default=deep_default("dropout"))
    ap.add_argument("--pretrain-steps", type=int, default=deep_default("pretrain_steps"),
                    help="LW-PT pre-training steps (each encodes batch-size x (1 + candidates) documents)")
    ap.add_argument("--embedding", default=deep_default("embedding").source,
                    help="initial word vectors of the deep models, as `xmc train --set embedding.source=...` (its "
                         "default: skip-gram on the training texts), or random")
    ap.add_argument("--update", action="store_true",
                    help="keep the other models' rows of the dataset's results file and replace only these models'")
    ap.add_argument("--note", default="", help="appended to the run's description in the table (say what else ran)")
    ap.add_argument("--tag", default="",
                    help="appended to the rows' names, so they sit beside the rows of a run with other settings "
                         "(e.g. --tag skipgram beside rows from random vectors) instead of replacing them")
    ap.add_argument("--single", help=argparse.SUPPRESS)  # child process: run one model, print JSON
    args = ap.parse_args()
    if args.single:
        deep_options = {"swa_start": args.swa_start, "dropout": args.dropout, "embedding": args.embedding}
        if args.single.startswith("lwpt"):  # a variant (lwpt:no-pretraining) sets its own
            deep_options["pretrain_steps"] = args.pretrain_steps
        result = run_one(args.single, args.dataset, args.data, args.epochs, args.threads, args.seed, args.lr,
                         deep_options)
        print("RESULT " + json.dumps(result), flush=True)
        return
    names = args.models.split(",")
    extra = (f"Same split and machine, one run; threads={args.threads}, seed={args.seed}, lr={args.lr}, "
             f"deep models at most {args.epochs} epochs with early stopping on the validation split, "
             f"dropout {args.dropout}, weight averaging from epoch {args.swa_start} (0: off), "
             f"{args.embedding} word vectors, "
             f"LW-PT pre-training {args.pretrain_steps} steps; "
             f"{args.jobs} model(s) trained at a time" + (f", {args.note}" if args.note else "") + ".")
    finished: List[Dict] = []
    lock = threading.Lock()

    def run_and_save(name: str) -> None:
        # Each finished model is written at once, so a long run stopped halfway keeps what it measured.
        result = run_child(name, args)
        result.setdefault("setting", extra)
        result["model"] = row_name(name, args.seed, args.tag)
        with lock:
            finished.append(result)
            save_results(args.dataset, [result], extra, replace_all=not args.update and len(finished) == 1)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run_and_save, names))
    print((RESULTS / f"deep_real_{args.dataset}.md").read_text())


def row_name(model: str, seed: int, tag: str) -> str:
    """A result row's name: a repeat with another seed, or a run tagged, is a row of its own beside the
    plain one, where a run of the same model would replace it."""
    return " ".join([model] + ([tag] if tag else []) + ([f"seed={seed}"] if seed != 0 else []))


def save_results(dataset: str, rows: List[Dict], extra: str, replace_all: bool) -> None:
    """Merge ``rows`` into the dataset's results (a model's new row replaces its old one) and rewrite the table.

    The file is read and written under an exclusive lock, so runs on different models of one dataset can
    go on at the same time; ``replace_all`` drops the rows of earlier runs first.
    """
    import fcntl

    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"deep_real_{dataset}.json"
    with open(RESULTS / f".deep_real_{dataset}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        old = [] if replace_all or not json_path.is_file() else json.loads(json_path.read_text())
        ran = {r["model"] for r in rows}
        results = [r for r in old if r["model"] not in ran] + rows
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        (RESULTS / f"deep_real_{dataset}.md").write_text(write_table(dataset, results, extra))

if __name__ == "__main__":
    main()
