"""AttentionXML over the label tree, AttentionXML and LDGN over the linear PLT's candidates, against the
linear PLT on a generated raw-text corpus.

    python benchmarks/deep_synthetic.py --labels 50000 --train-docs 30000 --epochs 2
    python benchmarks/deep_synthetic.py --labels 100000 --models linear,attentionxml,attentionxml-candidates,ldgn
    python benchmarks/deep_synthetic.py --models attentionxml --model-dir runs/synthetic  # then beam_recall.py

``attentionxml`` searches its own tree (``candidates`` null); ``attentionxml-candidates`` is AttentionXML with
its default ``candidates: auto``: the linear PLT, trained first (its time counts), proposes the labels and
AttentionXML re-ranks them stacked on the PLT's scores.

Both models read the same generated texts (``xmc.datasets.synthetic.make_text_corpus``);
the linear PLT on TF-IDF features, AttentionXML on tokens over a shallow-and-wide tree
(``--height`` levels). Each model runs in its own process, so time and peak memory
are its own. Writes ``benchmarks/results/deep_synthetic_<labels>.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

from common import fit_linear_plt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def make(args):
    from xmc.data import TextData
    from xmc.datasets.synthetic import SyntheticParams, make_text_corpus

    c = make_text_corpus(SyntheticParams(n_labels=args.labels, n_train=args.train_docs, n_test=args.test_docs,
                                         n_features=args.vocab, seed=args.seed))
    return TextData(c.train_texts, c.train_labels), TextData(c.test_texts, c.test_labels)


def deep_params(kind: str, args, epochs: int, **model_options):
    """The deep models' shared settings (the tree and top-k are AttentionXML's only), plus ``model_options``
    of one model."""
    from xmc.registry import get
    from xmc.text.embeddings import EmbeddingParams
    from xmc.tree import TreeParams

    options = dict(epochs=epochs, patience=epochs, threads=args.threads, seed=args.seed, batch_size=args.batch_size,
                   lr=args.lr, hidden=args.hidden, embedding=EmbeddingParams(source="random", dim=args.embedding_dim))
    if kind == "attentionxml":
        options.update(fc_sizes=[args.fc], tree=TreeParams(max_leaf_size=8, height=args.height), top_k=args.top_k,
                       candidates=None)
    return get(kind).params_class().from_flat({**options, **model_options})


def run_one(name: str, args) -> Dict:
    from xmc.metrics import evaluate, inv_propensity
    from xmc.utils.resources import peak_rss_bytes

    train, test = make(args)
    t0 = time.perf_counter()
    if name == "linear":
        model = fit_linear_plt(train, args.threads, args.seed)
    elif name == "attentionxml":
        from xmc.models.attentionxml import AttentionXML

        model = AttentionXML(deep_params("attentionxml", args, args.epochs)).fit(train, progress=False, log=print)
        print(model.tree, flush=True)
    elif name == "attentionxml-candidates":
        from xmc.models.attentionxml import AttentionXML

        params = deep_params("attentionxml", args, args.candidate_epochs, candidates="auto",
                             n_candidates=args.n_candidates)
        model = AttentionXML(params).fit(train, progress=False, log=print)
    elif name == "ldgn":  # the linear PLT, trained here (its time counts), proposes the labels LDGN scores
        from xmc.models.ldgn import LDGN

        params = deep_params("ldgn", args, args.candidate_epochs, n_candidates=args.n_candidates)
        model = LDGN(params, candidates=fit_linear_plt(train, args.threads, args.seed)).fit(train, progress=False,
                                                                                            log=print)
    else:
        raise SystemExit(f"unknown model {name!r}: linear, attentionxml, attentionxml-candidates or ldgn")
    train_seconds = time.perf_counter() - t0
    if args.model_dir is not None:
        model.save(args.model_dir / name)
    t1 = time.perf_counter()
    ids, _ = model.predict_topk(test, k=5)
    predict_seconds = time.perf_counter() - t1
    metrics = evaluate(model.labels(test), ids, ks=(1, 3, 5), inv_prop=inv_propensity(model.labels(train)))
    return {"model": name, "train_seconds": train_seconds, "predict_docs_per_s": len(test.texts) / predict_seconds,
            "peak_rss_bytes": peak_rss_bytes(), "metrics": metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=50000)
    ap.add_argument("--train-docs", type=int, default=30000)
    ap.add_argument("--test-docs", type=int, default=3000)
    ap.add_argument("--vocab", type=int, default=50000)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per tree level")
    ap.add_argument("--height", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64, help="BiLSTM units per direction")
    ap.add_argument("--fc", type=int, default=128, help="units of the fully connected layer")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--candidate-epochs", type=int, default=3,
                    help="epochs of the models over the linear PLT's candidates (all candidates at once)")
    ap.add_argument("--n-candidates", type=int, default=100, help="labels the linear PLT proposes per document")
    ap.add_argument("--model-dir", type=Path, help="save each trained model in DIR/<model>")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the deep models")
    ap.add_argument("--embedding-dim", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="linear,attentionxml")
    ap.add_argument("--single", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        print("RESULT " + json.dumps(run_one(args.single, args)), flush=True)
        return
    results = []
    for name in args.models.split(","):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--single", name]
        print(f"== {name}", flush=True)
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
            for line in proc.stdout:
                if line.startswith("RESULT "):
                    results.append(json.loads(line[7:]))
                else:
                    print("  " + line.rstrip(), flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    over = [m for m in args.models.split(",") if m in ("ldgn", "attentionxml-candidates")]
    over_note = (f"; {' and '.join(over)}: over the linear PLT's top {args.n_candidates} labels per document "
                 f"(the PLT's training time included), {args.candidate_epochs} epoch(s)" if over else "")
    lines = [f"# Deep models against the linear PLT: generated text, {args.labels:,} labels", "",
             f"{args.train_docs:,} training / {args.test_docs:,} test documents, vocabulary {args.vocab:,}; "
             f"batch {args.batch_size}, {args.embedding_dim}-d random embeddings, BiLSTM {args.hidden} per "
             f"direction, FC {args.fc}, Adam lr {args.lr:g}; AttentionXML: tree height {args.height}, "
             f"{args.epochs} epoch(s) per level, "
             f"top-k / beam {args.top_k}{over_note}; threads={args.threads}. One run, "
             f"each model in its own process.", "",
             "| model | P@1 | P@3 | P@5 | PSP@5 | train s | predict docs/s | peak MiB |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["metrics"]
        lines.append(f"| {r['model']} | {m['P@1'] * 100:.2f} | {m['P@3'] * 100:.2f} | {m['P@5'] * 100:.2f} | "
                     f"{m['PSP@5'] * 100:.2f} | {r['train_seconds']:.0f} | {r['predict_docs_per_s']:,.0f} | "
                     f"{r['peak_rss_bytes'] / 2**20:,.0f} |")
    base = next((r for r in results if r["model"] == "attentionxml"), results[0])
    for r in results:
        if r is not base:
            lines += ["", f"Ratios {r['model']} / {base['model']}: train time "
                          f"{r['train_seconds'] / base['train_seconds']:.2f}, "
                          f"throughput {r['predict_docs_per_s'] / base['predict_docs_per_s']:.3f}, "
                          f"peak memory {r['peak_rss_bytes'] / base['peak_rss_bytes']:.2f}."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"deep_synthetic_{args.labels}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
